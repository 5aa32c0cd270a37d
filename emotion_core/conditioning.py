"""Training-free emotion conditioning: steer a text conditioning along an emotion
direction in the text encoder's own embedding space.

    c' = c + sum_e w_e * (E(descriptor_e) - E(""))      w = strength * direction

``E`` is the user's CLIP, whatever family the graph uses (``encoder_families``): SD1.5's
CLIP-L, SDXL's CLIP-L + CLIP-G (each encoder's delta lands in its own feature slice
of the 2048-wide tokens, and CLIP-G's pooled delta in ``pooled_output``), Flux's T5-XXL
tokens with CLIP-L's pooled vector, SD3.5's CLIP chunks followed by T5 tokens with the
L + G pooled vector. The direction is target minus source distribution, so the edit
moves toward the target emotion and away from what the source image already evokes.
CLIP token deltas repeat every 77 tokens, so long (concatenated) prompts are covered;
T5 token deltas cover the padded length of the empty prompt (256 on Flux, 77 on SD3.5)
and nothing past it. A conditioning from another family than the CLIP is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .direction import EmotionDirection
from .encoder_families import CLIP, EncoderFamily, check_same_family, identify, segments
from .errors import InvalidInputError
from .taxonomy import EMOTIONS

# What each emotion looks like, in words a text-to-image model can draw.
EMOTION_DESCRIPTORS: dict[str, str] = {
    "amusement": "playful whimsical funny scene, cheerful bright colours, comic details, laughter",
    "awe": "vast majestic grandeur, towering scale, sweeping vista, dramatic rays of light, sublime",
    "contentment": "calm cosy peaceful scene, soft warm golden light, gentle pastel colours, serene",
    "excitement": "dynamic energetic motion, vivid saturated colours, sparks and bursts of light, thrilling action",
    "anger": "harsh red and black tones, aggressive jagged shapes, fire and smoke, violent chaos",
    "disgust": "filthy rotting decay, slimy grime, sickly green and brown tones, mould, repulsive mess",
    "fear": "dark ominous shadows, looming threat, cold fog, eerie dim light, menacing silhouettes",
    "sadness": "grey rainy gloom, muted desaturated blue tones, lonely empty space, wilted flowers, melancholy",
}
NEUTRAL_PROMPT = ""
MIN_WEIGHT = 1e-6


@dataclass(frozen=True)
class Encoded:
    """One text encoding: tokens ``[1,T,D]`` and the pooled vector ``[1,P]`` if the model has one."""

    tokens: torch.Tensor
    pooled: Optional[torch.Tensor] = None


TextEncoder = Callable[[str], Encoded]


def emotion_weights(direction: EmotionDirection) -> dict[str, float]:
    """Non-zero per-emotion weights of the scaled direction."""
    scaled = direction.scaled().tolist()
    return {e: w for e, w in zip(EMOTIONS, scaled) if abs(w) > MIN_WEIGHT}


@dataclass(frozen=True)
class EmotionDelta:
    """``sum_e w_e (E(descriptor_e) - E(""))`` in the empty prompt's token layout: ``tokens``
    ``[1,T,D]``, ``pooled`` ``[1,P]`` or None, the encoders' family and the layout's
    ``(kind, start, end)`` segments (CLIP chunks, T5 tokens)."""

    tokens: torch.Tensor
    pooled: Optional[torch.Tensor]
    family: EncoderFamily
    segments: tuple[tuple[str, int, int], ...]


def _aligned(encoded: torch.Tensor, family: EncoderFamily, layout: list[tuple[str, int, int]]) -> torch.Tensor:
    """``encoded``'s tokens in the empty prompt's layout: each segment cut to the empty prompt's
    segment length (a descriptor longer than one CLIP chunk or T5's padding loses its tail)."""
    own = {kind: (start, end) for kind, start, end in segments(encoded, family)}
    parts = []
    for kind, start, end in layout:
        if kind not in own:
            raise InvalidInputError(f"the text encoder gave no {kind.upper()} tokens for an emotion descriptor but "
                                    f"did for the empty prompt ({family.describe()})")
        own_start, own_end = own[kind]
        length = end - start
        if own_end - own_start < length:
            raise InvalidInputError(
                f"the text encoder gave {own_end - own_start} {kind.upper()} tokens for an emotion descriptor but "
                f"{length} for the empty prompt; expected at least as many ({family.describe()})")
        parts.append(encoded[:, own_start:own_start + length])
    return torch.cat(parts, dim=1)


def emotion_delta(encode: TextEncoder, direction: EmotionDirection) -> EmotionDelta | None:
    """``sum_e w_e (E(descriptor_e) - E(""))``; ``None`` when the direction is zero.
    Encodes one prompt per emotion with a non-zero weight, plus the neutral prompt."""
    weights = emotion_weights(direction)
    if not weights:
        return None
    neutral = encode(NEUTRAL_PROMPT)
    family = identify(neutral.tokens, neutral.pooled)
    layout = segments(neutral.tokens, family)
    tokens = torch.zeros_like(neutral.tokens, dtype=torch.float32)
    pooled = None if neutral.pooled is None else torch.zeros_like(neutral.pooled, dtype=torch.float32)
    for emotion, weight in weights.items():
        encoded = encode(EMOTION_DESCRIPTORS[emotion])
        if encoded.tokens.shape[-1] != neutral.tokens.shape[-1]:
            raise InvalidInputError(
                f"the text encoder gave {encoded.tokens.shape[-1]}-wide tokens for the {emotion} descriptor but "
                f"{neutral.tokens.shape[-1]}-wide ones for the empty prompt")
        tokens += weight * (_aligned(encoded.tokens, family, layout).float() - neutral.tokens.float())
        if pooled is not None and encoded.pooled is not None:
            pooled += weight * (encoded.pooled.float() - neutral.pooled.float())
    return EmotionDelta(tokens, pooled, family, tuple(layout))


def _tile_tokens(delta: torch.Tensor, length: int) -> torch.Tensor:
    repeats = -(-length // delta.shape[1])
    return delta.repeat(1, repeats, 1)[:, :length]


def _fit_tokens(delta: torch.Tensor, length: int) -> torch.Tensor:
    """T5 tokens are positions in one sequence: cut, or zero past the delta's end."""
    if delta.shape[1] >= length:
        return delta[:, :length]
    return torch.cat([delta, delta.new_zeros(delta.shape[0], length - delta.shape[1], delta.shape[2])], dim=1)


def _delta_segment(delta: EmotionDelta, kind: str) -> torch.Tensor | None:
    for segment_kind, start, end in delta.segments:
        if segment_kind == kind:
            return delta.tokens[:, start:end]
    return None


def apply_delta(tokens: torch.Tensor, pooled: torch.Tensor | None,
                delta: EmotionDelta) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Add an emotion delta to one conditioning entry (batch broadcast; CLIP chunks tiled, T5
    tokens by position). A conditioning of another family than the delta's CLIP is an error."""
    family = identify(tokens, pooled)
    check_same_family(family, delta.family)
    parts = []
    for kind, start, end in segments(tokens, delta.family):
        segment = _delta_segment(delta, kind)
        if segment is None:
            parts.append(tokens.new_zeros(1, end - start, tokens.shape[-1]))
        elif kind == CLIP:
            parts.append(_tile_tokens(segment, end - start))
        else:
            parts.append(_fit_tokens(segment, end - start))
    new_tokens = tokens + torch.cat(parts, dim=1).to(tokens.device, tokens.dtype)
    new_pooled = pooled
    if pooled is not None and delta.pooled is not None and pooled.shape[-1] == delta.pooled.shape[-1]:
        new_pooled = pooled + delta.pooled.to(pooled.device, pooled.dtype)
    return new_tokens, new_pooled


def steer_conditioning(conditioning: list, delta: EmotionDelta | None) -> list:
    """ComfyUI-style conditioning ``[[tokens, dict], ...]`` with the delta added to every
    entry. Returns new lists and dicts; the input is never mutated."""
    out = []
    for tokens, extras in conditioning:
        extras = dict(extras)
        if delta is not None:
            tokens, pooled = apply_delta(tokens, extras.get("pooled_output"), delta)
            if pooled is not None:
                extras["pooled_output"] = pooled
        out.append([tokens, extras])
    return out


def replace_tokens(conditioning: list | None, tokens: torch.Tensor) -> list:
    """ComfyUI-style conditioning with ``tokens`` in place of every entry's text tokens (EmoEditor's
    emotion tokens replace the text). Each entry keeps its other keys (areas, masks,
    InstructPix2Pix's concat latent); its text pooled vector is dropped, as it would not match the
    new tokens. Without a conditioning: one entry with no extras. The input is never mutated."""
    entries = conditioning or [[None, {}]]
    return [[tokens, {k: v for k, v in extras.items() if k != "pooled_output"}] for _, extras in entries]
