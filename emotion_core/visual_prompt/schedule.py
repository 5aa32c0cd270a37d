"""Per-layer strength of the visual prompt.

The presets mean what IPAdapter_plus users know them as. It weights whole
SpatialTransformer containers by their index in the UNet's call order (input
blocks, the middle block, output blocks; ComfyUI's ``transformer_index``):

- SDXL (11 containers): ``style`` is container 6 alone, the first up level's
  second attention (ComfyUI ``output 1``, diffusers ``up_blocks.0.attentions.1``);
  ``composition`` is container 3 alone, the last down level's second attention
  (``input 8``, ``down_blocks.2.attentions.1``).
- SD1.5 (16 containers), as IPAdapter_plus weights it there: ``style`` is every
  container except the deepest down level, the middle block and the first up
  level's first two (``input 1, 2, 4, 5`` and ``output 5``–``11``);
  ``composition`` is the deepest down level (``input 7`` at a quarter, ``input 8``
  in full).
- Any other UNet (e.g. the shallow test checkpoint): SDXL's rule read from the
  model, a level being a run of containers of equal width: ``style`` is the
  first up level's second container, ``composition`` the last down level's
  second (its last when it has one).

Layers a preset leaves out get weight 0 and cost nothing (the patch skips them).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..errors import InvalidInputError
from .sites import AttnSite

WEIGHT_RANGE = (0.0, 2.0)
UNIFORM, STYLE, COMPOSITION = "uniform", "style", "composition"
PRESETS = (UNIFORM, STYLE, COMPOSITION)
# container count -> preset -> {container index: multiplier}: IPAdapter_plus's tables
# (ComfyUI_IPAdapter_plus, IPAdapterPlus.py, weight types "style transfer" / "composition").
IPADAPTER_PLUS_TABLES: Mapping[int, Mapping[str, Mapping[int, float]]] = {
    11: {STYLE: {6: 1.0}, COMPOSITION: {3: 1.0}},  # SDXL
    16: {STYLE: {i: 1.0 for i in (0, 1, 2, 3, *range(9, 16))}, COMPOSITION: {4: 0.25, 5: 1.0}},  # SD1.5
}
_STAGE_ORDER = {"input": 0, "middle": 1, "output": 2}


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


def containers(sites: Sequence[AttnSite]) -> list[tuple[str, int]]:
    """``(block, number)`` of every attention container in call order (input, middle, output):
    position i is IPAdapter_plus's ``t_idx`` i."""
    return sorted({(s.block, s.number) for s in sites}, key=lambda c: (_STAGE_ORDER[c[0]], c[1]))


def _levels(sites: Sequence[AttnSite], block: str) -> list[list[tuple[str, int]]]:
    """Containers of one stage grouped into levels (runs of equal attention width)."""
    width = {(s.block, s.number): s.inner_dim for s in sites}
    levels: list[list[tuple[str, int]]] = []
    for container in (c for c in containers(sites) if c[0] == block):
        if levels and width[levels[-1][-1]] == width[container]:
            levels[-1].append(container)
        else:
            levels.append([container])
    return levels


def preset_multipliers(preset: str, sites: Sequence[AttnSite]) -> dict[tuple[str, int], float]:
    """Container -> multiplier for ``style`` / ``composition`` (unlisted containers: 0)."""
    order = containers(sites)
    table = IPADAPTER_PLUS_TABLES.get(len(order), {}).get(preset)
    if table is not None:
        return {order[i]: m for i, m in table.items()}
    levels = _levels(sites, "output" if preset == STYLE else "input")
    if not levels:
        raise InvalidInputError(f"the {preset!r} preset needs attention in the UNet's "
                                f"{'up' if preset == STYLE else 'down'} blocks; this model has none")
    level = levels[0] if preset == STYLE else levels[-1]
    return {level[min(1, len(level) - 1)]: 1.0}


def layer_weights(schedule: str, sites: Sequence[AttnSite], weight: float) -> list[float]:
    """``weight`` times the schedule's multiplier for each site.

    ``schedule`` is a preset name, three numbers ``down,middle,up``, or one number
    per cross-attention layer (in adapter order: down, up, middle)."""
    weight = check_weight(weight)
    spec = schedule.strip().lower()
    if spec == UNIFORM:
        return [weight] * len(sites)
    if spec in PRESETS:
        multipliers = preset_multipliers(spec, sites)
        return [weight * multipliers.get((site.block, site.number), 0.0) for site in sites]
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
