"""Argument checks several commands share: positive counts, and output files that must not
be replaced unless ``--overwrite`` (checked before any model loads, so a long run never
ends on an existing file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..errors import InvalidInputError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")  # as emotion_core.weights, without importing torch


def positive_int(text: str) -> int:
    message = f"expected a positive integer, got {text!r}"
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(message) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(message)
    return value


def refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    for path in paths:
        if Path(path).exists() and not overwrite:
            raise InvalidInputError(f"{path} exists; pass --overwrite to replace it")


def safetensors_out(out: str, overwrite: bool) -> Path:
    """``--out`` as a new (or, with ``--overwrite``, replaceable) .safetensors path."""
    path = Path(out)
    if path.suffix not in SAFETENSORS_SUFFIXES:
        raise InvalidInputError(f"--out must end in .safetensors, got {path.name}")
    refuse_existing([path], overwrite)
    return path
