"""How the visual guidance scale s_v changes over sampling progress p in [0, 1]
(``progress.sampling_progress``), and its allowed range.

- ``constant``: s_v at every step;
- ``linear_decay``: s_v·(1 − p), strongest while the composition and palette form,
  off at the end so the last steps only refine detail;
- ``linear_ramp``: s_v·p, leaves the layout to the text and pushes the mood late;
- ``cosine_decay``: s_v·½(1 + cos πp), like linear_decay but flat at both ends
  (full strength for longer early, a gentle fade-out).
"""

from __future__ import annotations

import math
from typing import Callable

from ..errors import InvalidInputError

SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "linear_decay": lambda p: 1.0 - p,
    "linear_ramp": lambda p: p,
    "cosine_decay": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}
VISUAL_SCALE_RANGE = (0.0, 30.0)


def schedule_factor(schedule: str, progress: float) -> float:
    """Multiplier of s_v at sampling progress ``progress`` in [0, 1]."""
    try:
        shape = SCHEDULES[schedule]
    except KeyError:
        raise InvalidInputError(f"unknown visual guidance schedule {schedule!r}; choose one of {list(SCHEDULES)}") from None
    return shape(min(max(progress, 0.0), 1.0))


def visual_scale_at(schedule: str, visual_scale: float, progress: float) -> float:
    return visual_scale * schedule_factor(schedule, progress)


def check_visual_scale(visual_scale: float) -> None:
    low, high = VISUAL_SCALE_RANGE
    if not (low <= visual_scale <= high) or math.isnan(visual_scale):
        raise InvalidInputError(f"visual guidance scale must be between {low} and {high}, got {visual_scale}")
