"""CLIP similarities that need a CLIP model with both towers, read from a local open_clip
``.safetensors`` file (never downloaded; e.g. the file a ``clip_zero_shot`` critic uses):

- **CLIP-score** (generation): ``100 * max(cos(image, prompt), 0)`` of the CLIP image and text
  embeddings, torchmetrics' ``CLIPScore`` definition (Hessel et al. 2021 with weight 100).
- **CLIP-I** (edits): ``cos(image(edit), image(source))`` on EmoEdit's 512x512 pair, EmoEdit's
  ``count_CLIP_I`` (``metrics/Metric_args.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..critics.clip_backbone import (
    build_clip,
    clip_config,
    make_preprocess,
    make_tokenizer,
)
from ..errors import ModelFormatError
from ..weights import load_state_dict, read_metadata

CLIP_SCORE_WEIGHT = 100.0


class ClipSimilarity:
    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"CLIP model file not found: {path}")
        metadata = read_metadata(path)
        state = load_state_dict(path)
        if "token_embedding.weight" not in state:
            raise ModelFormatError(f"{path.name}: CLIP-score needs a CLIP with its text tower (token_embedding.*, "
                                   "transformer.*); this file has only an image tower")
        config = clip_config(state, path, metadata)
        self.model = build_clip(state, config, path).to(device)
        self.preprocess = make_preprocess(config, path, metadata).to(device)
        self.tokenizer = make_tokenizer(config.get("text_cfg", {}).get("context_length", 77))
        self.device = torch.device(device)
        self.name = path.name

    @torch.no_grad()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[B,H,W,3]`` in 0..1 -> normalised ``[B,D]``."""
        pixels = images.permute(0, 3, 1, 2).to(self.device, torch.float32)
        return F.normalize(self.model.encode_image(self.preprocess(pixels)).float(), dim=-1).cpu()

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()

    def clip_score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """``[B]`` CLIP-score of each image with its prompt."""
        cosine = (self.image_features(images) * self.text_features(prompts)).sum(dim=-1)
        return CLIP_SCORE_WEIGHT * cosine.clamp(min=0.0)

    def clip_i(self, edit: torch.Tensor, source: torch.Tensor) -> float:
        """CLIP-I of one prepared pair (IMAGEs ``[1,H,W,3]``)."""
        features = self.image_features(torch.cat([edit, source]))
        return float((features[0] * features[1]).sum())
