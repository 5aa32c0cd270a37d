"""A tiny prompt bank of random centres for tests and example workflows.

Its visual centres are 1024-d (ViT-H/14 ``image_embeds``), so the test SD1.5
base adapter reads them; its text side belongs to the test CLIP B/32 critic
file, which must be written first (the bank stores that file's text probe)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from ..bank.feature_encoders import load_text_encoder
from ..bank.store import PROBE_TEXTS, PromptBank, save_bank
from ..taxonomy import EMOTIONS
from .adapter_assets import VIT_H_EMBEDS

TEXT_ENCODER_ROLE = "critic_clip_b32"
CLUSTERS = 4


def write_test_bank(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """``names["bank"]`` with 4 random clusters per emotion; returns ``{"bank": path}``."""
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
    bank = PromptBank(text, visual, counts, encode(list(PROBE_TEXTS)), metadata)
    return {"bank": save_bank(bank, models_dir / names["bank"])}
