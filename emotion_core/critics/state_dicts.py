"""Strict weight loading with errors a user can act on: which keys are missing,
which are unexpected, which shapes differ, and in which file."""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

from ..errors import ModelFormatError

# Buffers some exporters strip; a fresh module's defaults are correct for inference.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def preview(keys: Iterable[str], limit: int = 5) -> str:
    """A few keys for an error message, with a count of the rest."""
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; every key and shape must match exactly."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {preview(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys: {preview(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ: {preview(mismatched, 3)}")
    if problems:
        raise ModelFormatError(f"{source}: weights do not fit the model; " + "; ".join(problems))
    module.load_state_dict(state, strict=False)  # values are cast to the module's dtype
