"""Argument types and checks the commands share: numbers parsed and range-checked by argparse
(a bad value is a one-line usage error), ``IMG[:WEIGHT]`` visual prompts, and output files
that must not be replaced unless ``--overwrite`` (checked before any model loads, so a long
run never ends on an existing file)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")  # as emotion_core.weights, without importing torch
SEED_LIMIT = 2 ** 63  # torch.Generator.manual_seed takes a signed 64-bit seed


def positive_int(text: str) -> int:
    message = f"expected a positive integer, got {text!r}"
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(message) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(message)
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed must be between 0 and 2^63-1, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number meant for 0..1; the range is checked by the settings it goes into (e.g.
    ``LoopSettings``), which name the setting."""
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from exc


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
