"""Zero-shot CLIP critic: image features compared with per-emotion prompt ensembles.

The text side is computed once, when the critic is built, and kept as a buffer;
the text tower is then dropped, so scoring costs one image-tower pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import ModelFormatError
from ..taxonomy import EMOTIONS, parse_emotion
from .base import EmotionCritic
from .clip_backbone import ClipPreprocess, build_clip, clip_config, make_preprocess, make_tokenizer

# (adjective, noun, one-line description) per emotion, written for this project.
_WORDS: dict[str, tuple[str, str, str]] = {
    "amusement": ("amused", "amusement", "a funny, playful scene that makes people laugh or smile"),
    "awe": ("awestruck", "awe", "a vast, majestic sight that makes people feel small and amazed"),
    "contentment": ("content", "contentment", "a calm, cosy, peaceful moment of quiet satisfaction"),
    "excitement": ("excited", "excitement", "a thrilling, energetic moment full of anticipation"),
    "anger": ("angry", "anger", "an unfair, hostile or aggressive scene that makes people furious"),
    "disgust": ("disgusted", "disgust", "something filthy, rotten or repulsive that makes people recoil"),
    "fear": ("afraid", "fear", "a dark, threatening or dangerous scene that makes people scared"),
    "sadness": ("sad", "sadness", "a scene of loss, loneliness or grief that makes people feel down"),
}
_TEMPLATES = (
    "a photo that makes people feel {adjective}.",
    "an image that evokes {noun}.",
    "a picture that would make anyone feel {adjective}.",
    "a photograph full of {noun}.",
    "looking at this picture, I feel {adjective}.",
    "a scene that fills the viewer with {noun}.",
)


def default_prompts() -> dict[str, list[str]]:
    """Six templates plus a short description for each emotion."""
    prompts = {}
    for emotion, (adjective, noun, description) in _WORDS.items():
        prompts[emotion] = [t.format(adjective=adjective, noun=noun) for t in _TEMPLATES] + [description + "."]
    return prompts


def merge_prompts(overrides: Any, path: Path) -> dict[str, list[str]]:
    """Default prompts with the emotions in metadata ``prompts`` replaced."""
    prompts = default_prompts()
    if overrides is None:
        return prompts
    if not isinstance(overrides, Mapping):
        raise ModelFormatError(f"{path.name}: metadata prompts must be an object {{emotion: [prompt, ...]}}")
    for name, texts in overrides.items():
        valid = isinstance(texts, list) and texts and all(isinstance(t, str) and t.strip() for t in texts)
        if not valid:
            raise ModelFormatError(f"{path.name}: prompts for {name!r} must be a non-empty list of non-empty strings")
        prompts[parse_emotion(name)] = list(texts)
    return prompts


@torch.no_grad()
def class_text_features(clip_model: torch.nn.Module, tokenizer, prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """``[8, D]`` in canonical order: normalised prompt features averaged per emotion, renormalised."""
    vocab = clip_model.token_embedding.num_embeddings
    rows = []
    for emotion in EMOTIONS:
        tokens = tokenizer(list(prompts[emotion]))
        if int(tokens.max()) >= vocab:
            raise ModelFormatError(f"the text tower's vocabulary ({vocab}) is smaller than CLIP's tokenizer needs")
        features = F.normalize(clip_model.encode_text(tokens).float(), dim=-1)
        rows.append(F.normalize(features.mean(dim=0), dim=-1))
    return torch.stack(rows)


class ClipZeroShotCritic(EmotionCritic):
    """logits = exp(logit_scale) * cos(image features, emotion text features)."""

    kind = "clip_zero_shot"

    def __init__(self, clip_model: torch.nn.Module, preprocess: ClipPreprocess, prompts: Mapping[str, Sequence[str]]):
        super().__init__(EMOTIONS)
        tokenizer = make_tokenizer(clip_model.context_length)
        self.visual = clip_model.visual
        self.image_preprocess = preprocess
        self.register_buffer("text_features", class_text_features(clip_model, tokenizer, prompts))
        self.register_buffer("logit_scale", clip_model.logit_scale.detach().float().clone())
        self.prompts = {e: list(prompts[e]) for e in EMOTIONS}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], path: Path) -> "ClipZeroShotCritic":
        config = clip_config(state, path, metadata)
        clip_model = build_clip(state, config, path)
        return cls(clip_model, make_preprocess(config, path, metadata), merge_prompts(metadata.get("prompts"), path))

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_preprocess(pixels)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.visual(inputs).float(), dim=-1)
        return self.logit_scale.exp() * image @ self.text_features.float().T

    def describe(self) -> dict:
        return {**super().describe(), "image_size": self.image_preprocess.image_size,
                "prompts_per_emotion": {e: len(p) for e, p in self.prompts.items()}}
