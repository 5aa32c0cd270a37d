"""Image projections: CLIP vision features -> image tokens in the text-context space.

Module and parameter names follow the public IP-Adapter files (under the
``image_proj.`` prefix) so their state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import BASE, AdapterLayout, ResamplerShape


class LinearProjection(nn.Module):
    """Base adapters: one pooled embedding -> ``tokens`` tokens (Linear, then LayerNorm per token)."""

    def __init__(self, feature_dim: int, cross_dim: int, tokens: int):
        super().__init__()
        self.tokens, self.cross_dim = tokens, cross_dim
        self.proj = nn.Linear(feature_dim, tokens * cross_dim)
        self.norm = nn.LayerNorm(cross_dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        """``[N, feature_dim]`` -> ``[N, tokens, cross_dim]``."""
        return self.norm(self.proj(embeds).reshape(-1, self.tokens, self.cross_dim))


class PerceiverAttention(nn.Module):
    """Learned queries attend to [image features; queries] (both layer-normed)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)  # image features
        self.norm2 = nn.LayerNorm(dim)  # latent queries
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        latents = self.norm2(latents)
        context = torch.cat([self.norm1(features), latents], dim=1)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._heads(self.to_q(latents)), self._heads(k), self._heads(v))
        return self.to_out(out.transpose(1, 2).flatten(2))


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class Resampler(nn.Module):
    """Plus adapters: ``tokens`` learned queries read a whole hidden-state sequence
    through perceiver attention, so the tokens keep spatial detail a pooled embedding loses."""

    def __init__(self, feature_dim: int, cross_dim: int, tokens: int, shape: ResamplerShape):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(1, tokens, shape.dim))
        self.proj_in = nn.Linear(feature_dim, shape.dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(shape.dim, shape.heads, shape.head_dim), _feed_forward(shape.dim, shape.ff_mult)])
            for _ in range(shape.depth)
        )
        self.proj_out = nn.Linear(shape.dim, cross_dim)
        self.norm_out = nn.LayerNorm(cross_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``[N, seq, feature_dim]`` -> ``[N, tokens, cross_dim]``."""
        features = self.proj_in(hidden_states)
        latents = self.latents.expand(hidden_states.shape[0], -1, -1)
        for attention, feed_forward in self.layers:
            latents = latents + attention(features, latents)
            latents = latents + feed_forward(latents)
        return self.norm_out(self.proj_out(latents))


def build_projection(layout: AdapterLayout) -> nn.Module:
    if layout.variant == BASE:
        return LinearProjection(layout.feature_dim, layout.cross_dim, layout.tokens)
    return Resampler(layout.feature_dim, layout.cross_dim, layout.tokens, layout.resampler)
