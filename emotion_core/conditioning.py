"""Training-free emotion conditioning: steer a text conditioning along an emotion
direction in the text encoder's own embedding space.

    c' = c + sum_e w_e * (E(descriptor_e) - E(""))      w = strength * direction

``E`` is the user's CLIP (whatever model the graph uses, so SD1.5, SDXL and others
all work). The direction is target minus source distribution, so the edit moves
toward the target emotion and away from what the source image already evokes.
Token deltas repeat every 77 tokens so long (concatenated) prompts are covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .direction import EmotionDirection
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
CHUNK_TOKENS = 77
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


def emotion_delta(encode: TextEncoder, direction: EmotionDirection) -> Encoded | None:
    """``sum_e w_e (E(descriptor_e) - E(""))``; ``None`` when the direction is zero.
    Encodes one prompt per emotion with a non-zero weight, plus the neutral prompt."""
    weights = emotion_weights(direction)
    if not weights:
        return None
    neutral = encode(NEUTRAL_PROMPT)
    tokens = torch.zeros_like(neutral.tokens, dtype=torch.float32)
    pooled = None if neutral.pooled is None else torch.zeros_like(neutral.pooled, dtype=torch.float32)
    for emotion, weight in weights.items():
        encoded = encode(EMOTION_DESCRIPTORS[emotion])
        if encoded.tokens.shape != neutral.tokens.shape:
            raise InvalidInputError(
                f"the text encoder gave {tuple(encoded.tokens.shape)} for the {emotion} descriptor but "
                f"{tuple(neutral.tokens.shape)} for the empty prompt; expected one 77-token chunk each"
            )
        tokens += weight * (encoded.tokens.float() - neutral.tokens.float())
        if pooled is not None and encoded.pooled is not None:
            pooled += weight * (encoded.pooled.float() - neutral.pooled.float())
    return Encoded(tokens, pooled)


def _tile_tokens(delta: torch.Tensor, length: int) -> torch.Tensor:
    repeats = -(-length // delta.shape[1])
    return delta.repeat(1, repeats, 1)[:, :length]


def apply_delta(tokens: torch.Tensor, pooled: torch.Tensor | None, delta: Encoded) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Add an emotion delta to one conditioning entry (batch broadcast, tokens tiled)."""
    if tokens.shape[-1] != delta.tokens.shape[-1]:
        raise InvalidInputError(
            f"conditioning width {tokens.shape[-1]} does not match the CLIP's width {delta.tokens.shape[-1]}; "
            "connect the CLIP that made this conditioning"
        )
    new_tokens = tokens + _tile_tokens(delta.tokens, tokens.shape[1]).to(tokens.device, tokens.dtype)
    new_pooled = pooled
    if pooled is not None and delta.pooled is not None and pooled.shape[-1] == delta.pooled.shape[-1]:
        new_pooled = pooled + delta.pooled.to(pooled.device, pooled.dtype)
    return new_tokens, new_pooled


def steer_conditioning(conditioning: list, delta: Encoded | None) -> list:
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
