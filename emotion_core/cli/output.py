"""Printing of command results: JSON lines on stdout, or readable text."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable


def _lines(result: Any) -> Iterable[Any]:
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return result
    if isinstance(result, dict):
        return [result]
    return result  # generators stream one object at a time


def _as_text(obj: Any) -> str:
    if isinstance(obj, dict):
        if "text" in obj and len(obj) == 1:
            return str(obj["text"])
        return "\n".join(f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in obj.items())
    return str(obj)


def _strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null: JSON has no such numbers, and a reader that
    follows the standard would reject the whole line (e.g. ESMI's S_emo is NaN when the
    source's target probability underflows, as in EmoEditor's own metric)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _strict_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(value) for value in obj]
    return obj


def emit(result: Any, as_json: bool) -> int:
    """Print each object as it comes (so batches stream); return the exit code."""
    for obj in _lines(result):
        if as_json:
            sys.stdout.write(json.dumps(_strict_json(obj), sort_keys=False, allow_nan=False) + "\n")
        else:
            sys.stdout.write(_as_text(obj) + "\n")
        sys.stdout.flush()
    return 0
