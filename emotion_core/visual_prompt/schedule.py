"""Per-layer strength of the visual prompt.

Down and middle blocks shape layout and composition, up blocks colour, texture
and finish, so weighting the stages differently lets an artist take an image's
mood without its composition (``style``) or the reverse (``composition``).
"""

from __future__ import annotations

import math
from typing import Sequence

from ..errors import InvalidInputError
from .sites import AttnSite

WEIGHT_RANGE = (0.0, 2.0)
# Preset -> multiplier per UNet stage.
PRESETS = {
    "uniform": {"down": 1.0, "middle": 1.0, "up": 1.0},
    "style": {"down": 0.25, "middle": 0.5, "up": 1.0},
    "composition": {"down": 1.0, "middle": 1.0, "up": 0.25},
}


def check_weight(value: float, name: str = "weight") -> float:
    low, high = WEIGHT_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")
    return float(value)


def _parse_list(spec: str) -> list[float]:
    values = []
    for part in spec.split(","):
        try:
            value = float(part)
        except ValueError:
            shown = spec if len(spec) <= 40 else spec[:40] + "..."
            raise InvalidInputError(
                f"weight_schedule {shown!r} is not a preset ({', '.join(PRESETS)}) or a comma list of numbers"
            ) from None
        values.append(check_weight(value, "schedule value"))
    return values


def layer_weights(schedule: str, sites: Sequence[AttnSite], weight: float) -> list[float]:
    """``weight`` times the schedule's multiplier for each site.

    ``schedule`` is a preset name, three numbers ``down,middle,up``, or one number
    per cross-attention layer (in adapter order: down, up, middle)."""
    weight = check_weight(weight)
    spec = schedule.strip().lower()
    if spec in PRESETS:
        stage = PRESETS[spec]
        return [weight * stage[site.stage] for site in sites]
    values = _parse_list(spec)
    if len(values) == 3:
        stage = dict(zip(("down", "middle", "up"), values))
        return [weight * stage[site.stage] for site in sites]
    if len(values) == len(sites):
        return [weight * value for value in values]
    raise InvalidInputError(
        f"schedule has {len(values)} values; give 3 (down,middle,up) or one per cross-attention layer "
        f"({len(sites)} in this model), or a preset: {', '.join(PRESETS)}"
    )
