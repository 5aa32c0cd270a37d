"""Printing of command results: JSON lines on stdout, or readable text."""

from __future__ import annotations

import json
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


def emit(result: Any, as_json: bool) -> int:
    """Print each object as it comes (so batches stream); return the exit code."""
    for obj in _lines(result):
        if as_json:
            sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
        else:
            sys.stdout.write(_as_text(obj) + "\n")
        sys.stdout.flush()
    return 0
