"""Emotion directions (EmoEditor): target distribution minus the source image's
emotion distribution, scaled by an artist-facing strength.

A target is one emotion or a blend (``"awe:0.7, contentment:0.3"``); without a
source image the direction is the target distribution itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .errors import InvalidInputError
from .taxonomy import EMOTIONS, NUM_EMOTIONS, as_dict, parse_emotion, remap_from_canonical

STRENGTH_RANGE = (0.0, 2.0)


def parse_blend(text: str) -> dict[str, float]:
    """``"awe:0.7, contentment:0.3"`` (or just ``"awe"``) -> normalised weights."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("blend is empty; expected e.g. 'awe' or 'awe:0.7, contentment:0.3'")
    weights: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition(":")
        emotion = parse_emotion(name)
        try:
            weight = float(value) if value.strip() else 1.0
        except ValueError as exc:
            raise InvalidInputError(f"blend weight for {emotion!r} must be a number, got {value.strip()!r}") from exc
        weights[emotion] = weights.get(emotion, 0.0) + weight
    return normalise_weights(weights)


def normalise_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Validate emotion weights (finite, >= 0, not all zero) and scale them to sum to 1."""
    parsed: dict[str, float] = {}
    for name, weight in weights.items():
        emotion = parse_emotion(name)
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInputError(f"weight for {emotion!r} must be a finite number >= 0, got {weight}")
        parsed[emotion] = parsed.get(emotion, 0.0) + weight
    peak = max(parsed.values(), default=0.0)
    if peak <= 0:
        raise InvalidInputError("target weights are all zero; give at least one emotion a positive weight")
    scaled = {e: w / peak for e, w in parsed.items()}  # huge weights must not overflow the sum to inf
    total = sum(scaled.values())
    return {e: w / total for e, w in scaled.items() if w / total > 0}


def validate_distribution(values: Sequence[float] | torch.Tensor, name: str = "source distribution") -> tuple[float, ...]:
    """An 8-way probability distribution in canonical order, as a tuple of floats."""
    vector = torch.as_tensor(values, dtype=torch.float64).flatten()
    if vector.numel() != NUM_EMOTIONS:
        raise InvalidInputError(f"{name}: expected {NUM_EMOTIONS} probabilities, got {vector.numel()}")
    if not torch.isfinite(vector).all() or (vector < 0).any():
        raise InvalidInputError(f"{name}: probabilities must be finite and >= 0, got {vector.tolist()}")
    total = float(vector.sum())
    if abs(total - 1.0) > 1e-3:
        raise InvalidInputError(f"{name}: probabilities must sum to 1, got {total:.4f}")
    return tuple(float(v) for v in vector / total)


def source_distribution(distributions: Sequence[Sequence[float]] | torch.Tensor) -> tuple[float, ...]:
    """What a source evokes, from a critic's ``[B, 8]`` output: one image's distribution, or the
    mean over a batch (frames or crops of one source), as a checked 8-way distribution."""
    rows = torch.as_tensor(distributions, dtype=torch.float64)
    rows = rows[None] if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise InvalidInputError(f"source distributions: expected [B, {NUM_EMOTIONS}] critic probabilities, got "
                                f"shape {tuple(rows.shape)}")
    mean = rows.mean(dim=0)
    return validate_distribution(mean / mean.sum())


@dataclass(frozen=True)
class EmotionDirection:
    """The value passed along ``EMOTION_DIRECTION`` links. Immutable, so ComfyUI's
    cache can share it between nodes safely."""

    target: Mapping[str, float]
    strength: float = 1.0
    source: tuple[float, ...] | None = None

    @property
    def primary(self) -> str:
        """The target emotion with the largest weight."""
        return max(self.target, key=lambda e: (self.target[e], -EMOTIONS.index(e)))

    def target_vector(self) -> torch.Tensor:
        return torch.tensor([self.target.get(e, 0.0) for e in EMOTIONS], dtype=torch.float32)

    def vector(self) -> torch.Tensor:
        """EmoEditor's direction: target one-hot (or blend) minus the source distribution."""
        target = self.target_vector()
        if self.source is None:
            return target
        return target - torch.tensor(self.source, dtype=torch.float32)

    def scaled(self) -> torch.Tensor:
        return self.strength * self.vector()

    def in_order(self, order: Sequence[str]) -> torch.Tensor:
        """The scaled direction with its entries in a third-party class order."""
        return remap_from_canonical(self.scaled(), order)

    def with_source(self, distribution: Sequence[float] | torch.Tensor) -> "EmotionDirection":
        return EmotionDirection(self.target, self.strength, validate_distribution(distribution))

    def to_json(self) -> dict:
        return {
            "target": self.primary,
            "targets": dict(self.target),
            "strength": self.strength,
            "direction": as_dict(self.scaled().tolist()),
            "source": as_dict(self.source) if self.source is not None else None,
        }


def make_direction(
    target: str | Mapping[str, float],
    strength: float = 1.0,
    source: Sequence[float] | torch.Tensor | None = None,
) -> EmotionDirection:
    """Build a direction from a target (name, blend text or weights), a strength in [0, 2]
    and an optional source distribution."""
    strength = float(strength)
    lo, hi = STRENGTH_RANGE
    if not math.isfinite(strength) or not lo <= strength <= hi:
        raise InvalidInputError(f"strength must be between {lo} and {hi}, got {strength}")
    if isinstance(target, str):
        weights = parse_blend(target)
    else:
        weights = normalise_weights(target)
    return EmotionDirection(
        target=weights, strength=strength, source=None if source is None else validate_distribution(source)
    )
