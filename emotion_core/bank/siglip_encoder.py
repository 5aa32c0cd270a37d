"""SigLIP image features for ``flux-redux`` prompt banks, as ComfyUI's CLIP vision gives them to
Flux Redux: the SigLIP so400m (patch 14, 384 px) vision tower from a local transformers folder,
pixels normalised with mean/std 0.5, ``last_hidden_state`` after the post-layernorm (the sequence
``StyleModelApply`` projects) and the pooled output of its attention-pooling head as
``image_embeds`` (what the InstantX Flux IP-Adapter reads)."""

from __future__ import annotations

from pathlib import Path

import torch

from .feature_encoders import load_local_pretrained

SIGLIP_MEAN_STD = 0.5


class SiglipFeatureEncoder:
    """Bank build's feature encoder interface: ``image_size``, ``features(pixels)``, ``describe()``."""

    def __init__(self, model, name: str):
        self.model, self.name = model.eval(), name
        config = model.config
        self.dim, self.image_size = int(config.hidden_size), int(config.image_size)

    @torch.no_grad()
    def features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, 3, S, S]`` in 0..1 -> ``last_hidden_state [B, T, D]`` and ``image_embeds [B, D]``."""
        normalised = (pixels - SIGLIP_MEAN_STD) / SIGLIP_MEAN_STD
        out = self.model(pixel_values=normalised.to(self.model.device, self.model.dtype))
        pooled = out.pooler_output if out.pooler_output is not None else out.last_hidden_state.mean(dim=1)
        return {"last_hidden_state": out.last_hidden_state.float(), "image_embeds": pooled.float()}

    def describe(self) -> dict:
        return {"kind": "siglip", "name": self.name, "dim": self.dim, "image_size": self.image_size,
                "feature": "last_hidden_state+image_embeds"}


def siglip_encoder(folder: str | Path) -> SiglipFeatureEncoder:
    """A transformers ``SiglipVisionModel`` saved with ``save_pretrained``; read locally, never downloaded."""
    from transformers import SiglipVisionModel

    folder = Path(folder)
    model = load_local_pretrained(SiglipVisionModel, folder, "a SiglipVisionModel (google/siglip-so400m-patch14-384)")
    return SiglipFeatureEncoder(model, folder.name)
