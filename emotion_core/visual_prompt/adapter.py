"""The visual prompt adapter: image projection + per-layer image key/value projections,
loaded from IP-Adapter-layout files (.safetensors, or .bin read weights-only)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import InvalidInputError, ModelFormatError
from ..weights import load_state_dict
from .flux_ip_adapter import FluxIPAdapter
from .flux_layout import is_flux_adapter_state
from .layout import AdapterLayout, detect_layout
from .projection import build_projection

log = logging.getLogger(__name__)

# ComfyUI's CLIP vision files, by the width of the output each adapter variant reads.
_CLIP_HINTS = {1024: "ViT-H/14 image_embeds", 1280: "ViT-bigG/14 image_embeds or ViT-H/14 hidden states",
               1664: "ViT-bigG/14 hidden states", 768: "ViT-L/14 image_embeds", 512: "ViT-B image_embeds"}


class ImageKV(nn.Module):
    """``to_k_ip`` / ``to_v_ip`` of one cross-attention layer (no bias, as published)."""

    def __init__(self, cross_dim: int, inner_dim: int):
        super().__init__()
        self.to_k_ip = nn.Linear(cross_dim, inner_dim, bias=False)
        self.to_v_ip = nn.Linear(cross_dim, inner_dim, bias=False)


class VisualPromptAdapter(nn.Module):
    """Holds the weights; the maths of injection lives in ``attention``/``injection``.

    The projection runs in float32; the (much larger) per-layer K/V weights keep
    the file's dtype and are cast layer by layer when image tokens are projected."""

    def __init__(self, layout: AdapterLayout, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.layout = layout
        self.image_proj = build_projection(layout)
        self.ip_adapter = nn.ModuleDict(
            {str(2 * i + 1): ImageKV(layout.cross_dim, dim) for i, dim in enumerate(layout.layer_dims)}
        ).to(dtype)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "VisualPromptAdapter":
        layout = detect_layout(state)
        kv_dtype = state["ip_adapter.1.to_k_ip.weight"].dtype
        adapter = cls(layout, kv_dtype if kv_dtype.is_floating_point else torch.float32)
        projection = {k: v.float() for k, v in state.items() if k.startswith("image_proj.")}
        layers = {k: v for k, v in state.items() if k.startswith("ip_adapter.")}
        missing, unexpected = adapter.load_state_dict({**projection, **layers}, strict=False)
        if missing or unexpected:
            raise ModelFormatError(
                f"{layout.describe()}: missing {sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}"
            )
        log.info("visual prompt adapter: %s", layout.describe())
        return adapter.eval().requires_grad_(False)

    def check_features(self, features: torch.Tensor) -> None:
        """A clear error when the CLIP vision model does not match the adapter."""
        layout = self.layout
        rank = 2 if layout.variant == "base" else 3
        if features.ndim != rank or features.shape[-1] != layout.feature_dim:
            got = features.shape[-1]
            raise InvalidInputError(
                f"this {layout.family} {layout.variant} adapter reads {layout.feature_dim}-d CLIP vision "
                f"{layout.feature_name} ({_CLIP_HINTS.get(layout.feature_dim, 'see the adapter card')}), but the "
                f"CLIP vision model gives {got}-d features ({_CLIP_HINTS.get(got, 'unknown model')}); load the CLIP "
                "vision model the adapter was trained with"
            )

    @torch.no_grad()
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP features (``[N, D]`` base, ``[N, seq, D]`` plus) -> image tokens ``[N, tokens, cross_dim]``."""
        self.check_features(features)
        return self.image_proj(features.to(self._device(), torch.float32))

    @torch.no_grad()
    def layer_kv(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Image tokens ``[T, cross_dim]`` -> float32 (key, value) ``[T, inner]`` for every layer.
        Done once per injection: the image half of decoupled attention then costs no
        projection per step, and the adapter's K/V weights never need the GPU."""
        tokens = tokens.to(self._device(), torch.float32)
        out = []
        for layer in self.ip_adapter.values():
            out.append((tokens @ layer.to_k_ip.weight.float().T, tokens @ layer.to_v_ip.weight.float().T))
        return out

    def _device(self) -> torch.device:
        return next(self.image_proj.parameters()).device

    def weight_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())


def load_adapter_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of an adapter file; the public .bin files' nested dicts come back flattened."""
    return load_state_dict(path)


def load_adapter(path: str | os.PathLike) -> "VisualPromptAdapter | FluxIPAdapter":
    """An adapter from an IP-Adapter-layout file (SD1.5/SDXL, or Flux in the XLabs or InstantX
    format), on the CPU."""
    state = load_adapter_state(path)
    try:
        if is_flux_adapter_state(state):
            return FluxIPAdapter.from_state_dict(state)
        return VisualPromptAdapter.from_state_dict(state)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{Path(path).name}: {exc}") from exc
