"""VISUAL_PROMPT: ready image tokens per role, so a prompt bank (or any other
source) can feed the injector without a CLIP vision model.

Roles name the token sets a sampling branch can attend to: ``positive`` (the
visual prompt) and ``negative`` (what the unconditional branch sees: a negative
image, or the adapter's neutral tokens). ``negative_visual`` (optional) is the
visual prompt of another emotion that three-branch DPO guidance moves away
from; a guider maps its condition index to it, see ``injection.GUIDER_ROLES_OPTION``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from ..errors import InvalidInputError
from .adapter import VisualPromptAdapter
from .layout import PLUS, AdapterLayout

POSITIVE, NEGATIVE = "positive", "negative"
# Three-branch DPO guidance: the same text with another emotion's visual prompt.
NEGATIVE_VISUAL = "negative_visual"
COMBINE_MODES = ("concat", "average")
# CLIP's normalisation mean: an image of this colour is all zeros after CLIP
# preprocessing, the "no image" input the plus adapters were trained with.
CLIP_MEAN_RGB = (0.48145466, 0.4578275, 0.40821073)


@dataclass(frozen=True)
class VisualPrompt:
    """Image tokens ``[T, cross_dim]`` (float32, CPU) per role, for one adapter family/variant."""

    tokens: Mapping[str, torch.Tensor]
    family: str
    variant: str
    cross_dim: int
    source: str = field(default="images", compare=False)  # for logs: "images", "bank:awe", ...

    def __post_init__(self) -> None:
        for role in (POSITIVE, NEGATIVE):
            if role not in self.tokens:
                raise InvalidInputError(f"visual prompt has no {role!r} tokens (has {sorted(self.tokens)})")
        for role, tokens in self.tokens.items():
            if not role.isidentifier():
                raise InvalidInputError(f"visual prompt role names must be identifiers, got {role!r}")
            if tokens.ndim != 2 or tokens.shape[1] != self.cross_dim or tokens.shape[0] == 0:
                raise InvalidInputError(f"visual prompt {role!r} tokens have shape {tuple(tokens.shape)}, "
                                        f"expected [T>0, {self.cross_dim}]")

    def check_adapter(self, layout: AdapterLayout) -> None:
        if (self.family, self.variant, self.cross_dim) != (layout.family, layout.variant, layout.cross_dim):
            raise InvalidInputError(
                f"this visual prompt was made for a {self.family} {self.variant} adapter ({self.cross_dim}-wide "
                f"tokens) but the adapter is {layout.family} {layout.variant} ({layout.cross_dim}); use the adapter "
                "the visual prompt (or prompt bank) was built with"
            )


def neutral_image(size: int = 224) -> torch.Tensor:
    """ComfyUI IMAGE ``[1, size, size, 3]`` that CLIP preprocessing maps to zeros."""
    return torch.tensor(CLIP_MEAN_RGB).view(1, 1, 1, 3).expand(1, size, size, 3).contiguous()


def _tokens(adapter: VisualPromptAdapter, features: torch.Tensor, combine: str) -> torch.Tensor:
    """Features of N images -> ``[T, D]``: every image's tokens concatenated (attention
    spreads over all images) or the tokens of the averaged features (one image's worth)."""
    if combine == "average":
        features = features.mean(dim=0, keepdim=True)
    tokens = adapter.project(features)
    return tokens.reshape(-1, tokens.shape[-1])


def build_visual_prompt(adapter: VisualPromptAdapter, encode: Callable[[torch.Tensor], torch.Tensor],
                        images: torch.Tensor, negative_images: torch.Tensor | None = None,
                        combine: str = "concat") -> VisualPrompt:
    """Tokens for IMAGE batches. ``encode`` maps IMAGE ``[N,H,W,3]`` to the CLIP feature the
    adapter reads (``adapter.layout.feature_name``). Without negative images the
    negative role gets the adapter's "no image" tokens, as in IP-Adapter training:
    zero embeddings for base, the neutral image's hidden states for plus (repeated
    once per image, so both roles have equally many tokens and share one attention call)."""
    if combine not in COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
    _check_images(images, "image")
    features = encode(images)
    positive = _tokens(adapter, features, combine)
    if negative_images is not None:
        _check_images(negative_images, "negative_image")
        negative = _tokens(adapter, encode(negative_images), combine)
    else:
        neutral = encode(neutral_image()) if adapter.layout.variant == PLUS else torch.zeros_like(features[:1])
        copies = features.shape[0] if combine == "concat" else 1
        negative = _tokens(adapter, neutral, combine).repeat(copies, 1)
    layout = adapter.layout
    return VisualPrompt({POSITIVE: positive.cpu(), NEGATIVE: negative.cpu()}, layout.family, layout.variant,
                        layout.cross_dim)


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise InvalidInputError(f"{name} must be an IMAGE batch [B,H,W,3], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise InvalidInputError(f"{name} is an empty batch; connect at least one image")
