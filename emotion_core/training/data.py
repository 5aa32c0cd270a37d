"""Preference pairs -> what one DPO step needs: the two images as latents, the prompt's
text embedding and the two visual prompts as image tokens.

A visual prompt comes from a tokens file saved by the collector node (fixed tokens: the
per-layer keys/values still train) or from images encoded by a CLIP vision model and
projected by the adapter (the projection trains too). A pair without a visual prompt for
a branch uses its own image (chosen for the positive, rejected for the negative one),
which needs the image encoder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import InvalidInputError
from ..images import load_image, resize_shorter_center_crop, to_nchw
from ..preference import PreferencePair, VisualPromptRef
from ..weights import load_state_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisualSource:
    """One branch's visual prompt, exactly one of:

    - ``tokens [T, cross_dim]``: fixed image tokens (recorded by the collector node);
    - ``embeds``: image-encoder features the adapter's projection turns into tokens, so the
      projection trains too. ``[N, D]`` pooled ``image_embeds`` for base adapters, ``[N, T, D]``
      CLIP vision hidden states for plus (Resampler) adapters: the prompt bank's cluster centres;
    - ``images``: image paths to encode with the CLIP vision model.
    """

    tokens: torch.Tensor | None = None
    images: tuple = ()
    embeds: torch.Tensor | None = None

    @property
    def needs_encoder(self) -> bool:
        return self.tokens is None and self.embeds is None


def _source(ref: VisualPromptRef | None, own_image, cross_dim: int) -> VisualSource:
    if ref is None:
        return VisualSource(images=(own_image,))
    if ref.tokens is not None:
        tensors = load_state_dict(ref.tokens)
        tokens = tensors.get(ref.role)
        if tokens is None or tokens.ndim != 2 or tokens.shape[1] != cross_dim:
            shape = None if tokens is None else tuple(tokens.shape)
            raise InvalidInputError(f"{ref.tokens.name}: {ref.role!r} tokens {shape}, expected [T, {cross_dim}] for "
                                    "this adapter")
        return VisualSource(tokens=tokens.float())
    return VisualSource(images=ref.images)


@dataclass(frozen=True)
class Example:
    pair: PreferencePair
    positive: VisualSource
    negative: VisualSource

    @property
    def needs_encoder(self) -> bool:
        return self.positive.needs_encoder or self.negative.needs_encoder


def prepare_examples(pairs: Sequence[PreferencePair], cross_dim: int) -> tuple[list[Example], list[tuple[str, str]]]:
    """Examples, and (pair id, reason) of pairs whose visual prompt files are unusable (skipped)."""
    examples, skipped = [], []
    for pair in pairs:
        try:
            examples.append(Example(pair, _source(pair.positive_visual, pair.chosen, cross_dim),
                                    _source(pair.negative_visual, pair.rejected, cross_dim)))
        except InvalidInputError as exc:
            skipped.append((pair.id, str(exc)))
    return examples, skipped


def load_square(path, size: int) -> torch.Tensor:
    """An image file as ``[1, 3, size, size]`` in 0..1 (shorter side resized, centre crop)."""
    return resize_shorter_center_crop(to_nchw(load_image(path)), size, mode="bicubic").clamp(0.0, 1.0)


def as_image(pixels: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> IMAGE ``[N, H, W, 3]``."""
    return pixels.permute(0, 2, 3, 1).contiguous()
