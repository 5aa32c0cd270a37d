"""Argument types and checks the commands share: numbers parsed and range-checked by argparse
(a bad value is a one-line usage error), ``IMG[:WEIGHT]`` visual prompts, and output files
that must not be replaced unless ``--overwrite`` (checked before any model loads, so a long
run never ends on an existing file)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")  # as emotion_core.weights, without importing torch
SEED_LIMIT = 2 ** 63


def checked_number(convert: Callable[[str], float], expected: str,
                   accept: Callable[[float], bool] = lambda value: True) -> Callable[[str], float]:
    """An argparse type: ``convert`` (int or float) the text, refuse NaN/inf and values ``accept``
    rejects, with one message saying what was ``expected``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = checked_number(int, "a positive integer", lambda value: value >= 1)
non_negative_int = checked_number(int, "an integer >= 0", lambda value: value >= 0)
# torch.Generator.manual_seed takes a signed 64-bit seed
seed_int = checked_number(int, "an integer seed between 0 and 2^63-1", lambda value: 0 <= value < SEED_LIMIT)
finite_float = checked_number(float, "a finite number")
non_negative_float = checked_number(float, "a finite number >= 0", lambda value: value >= 0)
positive_float = checked_number(float, "a positive number", lambda value: value > 0)
# a number meant for 0..1: the range is checked by the settings it goes into (e.g. LoopSettings),
# whose errors name the setting
fraction = checked_number(float, "a number between 0 and 1")


@dataclass(frozen=True)
class VisualPromptArg:
    path: Path
    weight: float

    @classmethod
    def parse(cls, text: str) -> VisualPromptArg:
        """``IMG`` or ``IMG:WEIGHT`` (a colon followed by something that is not a number belongs to the path)."""
        path, sep, weight = text.rpartition(":")
        if sep:
            try:
                return cls(Path(path), float(weight))
            except ValueError:
                pass
        return cls(Path(text), 1.0)


def _exists(path: Path) -> InvalidInputError:
    return InvalidInputError(f"{path} exists; pass --overwrite to replace it")


def refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    for path in paths:
        if Path(path).exists() and not overwrite:
            raise _exists(path)


@contextmanager
def existing_refused(path: Path) -> Iterator[None]:
    """A core writer's ``FileExistsError`` (the file appeared after ``refuse_existing``) as the
    same bad input."""
    try:
        yield
    except FileExistsError:
        raise _exists(path) from None


def safetensors_out(out: str, overwrite: bool) -> Path:
    """``--out`` as a new (or, with ``--overwrite``, replaceable) .safetensors path."""
    path = Path(out)
    if path.suffix not in SAFETENSORS_SUFFIXES:
        raise InvalidInputError(f"--out must end in .safetensors, got {path.name}")
    refuse_existing([path], overwrite)
    return path
