"""Tiny prompt banks of random centres for tests and example workflows.

``bank``: built for ``ip-adapter``, visual centres 1024-d (ViT-H/14 ``image_embeds``),
so the test SD1.5 base adapter reads them. ``bank_plus``: built for ``ip-adapter-plus``,
with hidden-state centres ``[K, 16, 1280]`` (ViT-H/14 width; 16 tokens instead of 257 to
stay small: the Resampler reads any sequence length) for the test plus adapter. Their text
side belongs to the test CLIP B/32 critic file, which must be written first (a bank stores
that file's text probe)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from ..bank.feature_encoders import load_text_encoder
from ..bank.store import PROBE_TEXTS, PromptBank, save_bank
from ..taxonomy import EMOTIONS
from .adapter_assets import VIT_H_EMBEDS, VIT_H_HIDDEN

TEXT_ENCODER_ROLE = "critic_clip_b32"
CLUSTERS = 4
PLUS_TOKENS = 16


def write_test_bank(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """``names["bank"]`` and ``names["bank_plus"]`` with 4 random clusters per emotion; returns role -> path."""
    models_dir = Path(models_dir)
    clip_path = models_dir / names[TEXT_ENCODER_ROLE]
    encode = load_text_encoder(clip_path)
    generator = torch.Generator().manual_seed(seed)
    text, visual, counts = {}, {}, {}
    for emotion in EMOTIONS:
        text[emotion] = F.normalize(torch.randn(CLUSTERS, encode.dim, generator=generator), dim=-1)
        visual[emotion] = torch.randn(CLUSTERS, VIT_H_EMBEDS, generator=generator)
        counts[emotion] = torch.randint(1, 20, (CLUSTERS,), generator=generator)
    metadata = {
        "text_encoder": {"kind": "open_clip", "file": clip_path.name, "dim": encode.dim},
        "image_encoder": {"kind": "clip", "name": "test_clip_vision_vit_h", "dim": VIT_H_EMBEDS,
                          "feature": "image_embeds"},
        "clusters": CLUSTERS, "classes": list(EMOTIONS), "source": "random", "seed": seed, "random_weights": True,
    }
    probe = encode(list(PROBE_TEXTS))
    bank = PromptBank(text, visual, counts, probe, metadata)
    hidden = {e: torch.randn(CLUSTERS, PLUS_TOKENS, VIT_H_HIDDEN, generator=generator) for e in EMOTIONS}
    plus_metadata = {**metadata, "built_for": "ip-adapter-plus",
                     "image_encoder": {"kind": "clip-vision", "name": "test_clip_vision_vit_h", "dim": VIT_H_EMBEDS,
                                       "hidden_dim": VIT_H_HIDDEN, "feature": "image_embeds+penultimate_hidden_states"}}
    plus = PromptBank(text, visual, counts, probe, plus_metadata, {"visual_hidden_centres": hidden})
    return {"bank": save_bank(bank, models_dir / names["bank"]),
            "bank_plus": save_bank(plus, models_dir / names["bank_plus"])}
