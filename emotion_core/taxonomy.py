"""The eight Mikels emotions, in EmoSet's canonical order (positives first).

Every distribution in this project is an 8-vector in this order. Third-party
heads declare their own class order and are remapped with ``remap_to_canonical``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import InvalidInputError

if TYPE_CHECKING:  # torch is imported where a tensor is remapped: the CLI starts without it
    import torch

EMOTIONS: tuple[str, ...] = (
    "amusement",
    "awe",
    "contentment",
    "excitement",
    "anger",
    "disgust",
    "fear",
    "sadness",
)
NUM_EMOTIONS = len(EMOTIONS)
POSITIVE: frozenset[str] = frozenset(EMOTIONS[:4])
NEGATIVE: frozenset[str] = frozenset(EMOTIONS[4:])

# Class order of EmoEditor's ResNet-18 predictor and emotion encoder (alphabetical).
EMOEDITOR_ORDER: tuple[str, ...] = tuple(sorted(EMOTIONS))


def parse_emotion(name: str) -> str:
    """Canonical name of an emotion given in any case; a clear error otherwise."""
    if not isinstance(name, str):
        raise InvalidInputError(f"emotion must be a name, got {type(name).__name__}; expected one of: {', '.join(EMOTIONS)}")
    key = name.strip().lower()
    if key not in EMOTIONS:
        shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"  # one short error line
        raise InvalidInputError(f"unknown emotion {shown!r}; expected one of: {', '.join(EMOTIONS)}")
    return key


def emotion_index(name: str) -> int:
    return EMOTIONS.index(parse_emotion(name))


def valence(name: str) -> int:
    """+1 for the four positive emotions, -1 for the four negative ones."""
    return 1 if parse_emotion(name) in POSITIVE else -1


def parse_class_order(order: Sequence[str]) -> tuple[str, ...]:
    """Validate a third-party class order: the eight emotions, each exactly once."""
    parsed = tuple(parse_emotion(n) for n in order)
    if len(parsed) != NUM_EMOTIONS or set(parsed) != set(EMOTIONS):
        raise InvalidInputError(
            f"class order must list each of the 8 emotions exactly once, got {list(order)}"
        )
    return parsed


def remap_to_canonical(values: torch.Tensor, order: Sequence[str]) -> torch.Tensor:
    """Reorder the last dimension of ``values`` from ``order`` to ``EMOTIONS``."""
    order = parse_class_order(order)
    if values.shape[-1] != NUM_EMOTIONS:
        raise InvalidInputError(f"expected {NUM_EMOTIONS} scores in the last dimension, got shape {tuple(values.shape)}")
    import torch

    index = torch.tensor([order.index(e) for e in EMOTIONS], device=values.device)
    return values.index_select(-1, index)


def remap_from_canonical(values: torch.Tensor, order: Sequence[str]) -> torch.Tensor:
    """Reorder the last dimension of canonical-order ``values`` into ``order``."""
    order = parse_class_order(order)
    import torch

    index = torch.tensor([EMOTIONS.index(e) for e in order], device=values.device)
    return values.index_select(-1, index)


def as_dict(values: Iterable[float]) -> dict[str, float]:
    """An 8-vector in canonical order as ``{emotion: value}``."""
    values = [float(v) for v in values]
    if len(values) != NUM_EMOTIONS:
        raise InvalidInputError(f"expected {NUM_EMOTIONS} values, got {len(values)}")
    return dict(zip(EMOTIONS, values))
