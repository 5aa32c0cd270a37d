"""Flux IP-Adapters (XLabs and InstantX formats): image projection + per-block image
key/value projections, with the same interface as the SD ``VisualPromptAdapter``
(``layout``, ``project``, ``layer_kv``, ``check_features``), so visual prompts,
``ProjectedPrompt`` and ``VisualPromptInjection`` serve both."""

from __future__ import annotations

import logging
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, ModelFormatError
from .flux_layout import INSTANTX, XLABS, FluxAdapterLayout, detect_flux_layout

log = logging.getLogger(__name__)
# InstantX normalises image keys/values per head (diffusers RMSNorm, eps 1e-5, no weight).
INSTANTX_RMS_EPS = 1e-5


class _XLabsProjection(nn.Module):
    """``image_embeds [N, D]`` -> ``[N, tokens, cross]``: Linear, then LayerNorm per token."""

    def __init__(self, layout: FluxAdapterLayout):
        super().__init__()
        self.tokens, self.cross_dim = layout.tokens, layout.cross_dim
        self.proj = nn.Linear(layout.feature_dim, layout.tokens * layout.cross_dim)
        self.norm = nn.LayerNorm(layout.cross_dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embeds).reshape(-1, self.tokens, self.cross_dim))


class _InstantXProjection(nn.Module):
    """``pooled [N, D]`` -> ``[N, tokens, cross]``: Linear-GELU-Linear, then LayerNorm per token."""

    def __init__(self, layout: FluxAdapterLayout):
        super().__init__()
        self.tokens, self.cross_dim = layout.tokens, layout.cross_dim
        d = layout.feature_dim
        self.proj = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, layout.tokens * layout.cross_dim))
        self.norm = nn.LayerNorm(layout.cross_dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embeds).reshape(-1, self.tokens, self.cross_dim))


class _BlockKV(nn.Module):
    def __init__(self, cross_dim: int, hidden: int, bias: bool):
        super().__init__()
        self.k = nn.Linear(cross_dim, hidden, bias=bias)
        self.v = nn.Linear(cross_dim, hidden, bias=bias)


def _file_keys(layout: FluxAdapterLayout) -> dict[str, str]:
    """This module's parameter name -> the file's key."""
    names = {}
    if layout.variant == XLABS:
        for part in ("proj.weight", "proj.bias", "norm.weight", "norm.bias"):
            names[f"image_proj.{part}"] = f"ip_adapter_proj_model.{part}"
        for i in range(layout.layers):
            for kv in "kv":
                for kind in ("weight", "bias"):
                    names[f"blocks.{i}.{kv}.{kind}"] = \
                        f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj.{kind}"
    else:
        for part in ("proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias", "norm.weight", "norm.bias"):
            names[f"image_proj.{part}"] = f"image_proj.{part}"
        for i in range(layout.layers):
            for kv in "kv":
                names[f"blocks.{i}.{kv}.weight"] = f"ip_adapter.{i}.to_{kv}_ip.weight"
    return names


class FluxIPAdapter(nn.Module):
    """Weights of a Flux IP-Adapter; the block patches live in ``flux_injection``."""

    def __init__(self, layout: FluxAdapterLayout, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.layout = layout
        self.image_proj = _XLabsProjection(layout) if layout.variant == XLABS else _InstantXProjection(layout)
        bias = layout.variant == XLABS
        blocks = (_BlockKV(layout.cross_dim, layout.hidden, bias) for _ in range(layout.layers))
        self.blocks = nn.ModuleList(blocks).to(dtype)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "FluxIPAdapter":
        layout = detect_flux_layout(state)
        names = _file_keys(layout)
        extra = sorted(set(state) - set(names.values()))
        if extra:
            raise ModelFormatError(f"{layout.describe()}: unexpected keys {extra[:6]}")
        kv_dtype = state[names["blocks.0.k.weight"]].dtype
        adapter = cls(layout, kv_dtype if kv_dtype.is_floating_point else torch.float32)
        mapped = {ours: state[theirs].float() if ours.startswith("image_proj.") else state[theirs]
                  for ours, theirs in names.items()}
        adapter.load_state_dict(mapped, strict=True)
        log.info("flux IP-Adapter: %s", layout.describe())
        return adapter.eval().requires_grad_(False)

    def check_features(self, features: torch.Tensor) -> None:
        layout = self.layout
        if features.ndim == 3 and layout.variant == INSTANTX and features.shape[-1] == layout.feature_dim:
            raise InvalidInputError(
                "this InstantX Flux IP-Adapter reads SigLIP's pooled output (its attention-pooling head), but the "
                f"CLIP vision model gives a sequence {tuple(features.shape)} (ComfyUI's SigLIP has no pooling head); "
                "give it a visual prompt from a flux-redux prompt bank (it keeps the pooled output), or use the "
                "Redux path (Load Style Model + Apply Style Model) for SigLIP images"
            )
        if features.ndim != 2 or features.shape[-1] != layout.feature_dim:
            raise InvalidInputError(
                f"this {layout.variant} Flux IP-Adapter reads {layout.feature_dim}-d {layout.feature_description}, "
                f"but the CLIP vision model gives features of shape {tuple(features.shape)}; load the image encoder "
                "the adapter was trained with"
            )

    @torch.no_grad()
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Image features ``[N, D]`` -> image tokens ``[N, tokens, cross_dim]``."""
        self.check_features(features)
        return self.image_proj(features.to(self._device(), torch.float32))

    @torch.no_grad()
    def layer_kv(self, tokens: torch.Tensor, head_dim: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Image tokens ``[T, cross_dim]`` -> float32 (key, value) ``[T, hidden]`` per block, in block order
        (double blocks, then single blocks). InstantX keys/values come RMS-normalised per head
        (``head_dim``; Flux.1's 128 when not given), as its attention processor normalises them."""
        tokens = tokens.to(self._device(), torch.float32)
        out = []
        for block in self.blocks:
            k = F.linear(tokens, block.k.weight.float(), None if block.k.bias is None else block.k.bias.float())
            v = F.linear(tokens, block.v.weight.float(), None if block.v.bias is None else block.v.bias.float())
            if self.layout.variant == INSTANTX:
                k, v = (_rms_per_head(t, head_dim or 128) for t in (k, v))
            out.append((k, v))
        return out

    def _device(self) -> torch.device:
        return next(self.image_proj.parameters()).device

    def weight_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())


def _rms_per_head(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    heads = x.unflatten(-1, (-1, head_dim))
    return F.rms_norm(heads, (head_dim,), eps=INSTANTX_RMS_EPS).flatten(-2)
