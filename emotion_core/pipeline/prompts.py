"""Text prompts -> the text encoder's hidden states, as SD1.5 pipelines compute them, and
those states steered toward an emotion."""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..conditioning import Encoded, apply_delta, emotion_delta
from ..direction import EmotionDirection
from ..errors import InvalidInputError

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_prompts(pipe, prompts: Sequence[str]) -> list[torch.Tensor]:
    """One ``[1, 77, D]`` tensor per prompt (last hidden state; "" is the unconditional
    prompt). Text past the tokenizer's length is cut, with a warning naming the prompt."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise InvalidInputError("prompts must be a list of strings")
    if not prompts:
        return []
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    length = tokenizer.model_max_length
    tokens = tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    full = tokenizer(list(prompts), padding=False, truncation=False).input_ids
    for prompt, ids in zip(prompts, full):
        if len(ids) > length:
            log.warning("prompt is %d tokens; only the first %d are used: %r", len(ids), length, prompt[:80])
    mask = tokens.attention_mask if getattr(encoder.config, "use_attention_mask", False) else None
    device = encoder.device
    hidden = encoder(tokens.input_ids.to(device), attention_mask=None if mask is None else mask.to(device))[0]
    return list(hidden.split(1))


def steer_prompt(pipe, tokens: torch.Tensor, direction: EmotionDirection) -> torch.Tensor:
    """The prompt's hidden states moved along ``direction`` in the pipeline's own text encoder
    space: the Emotion Conditioning formula (``emotion_core.conditioning``), shared with the
    ComfyUI node, so the CLI steers exactly as a graph does."""
    delta = emotion_delta(lambda text: Encoded(encode_prompts(pipe, [text])[0]), direction)
    return tokens if delta is None else apply_delta(tokens, None, delta)[0]
