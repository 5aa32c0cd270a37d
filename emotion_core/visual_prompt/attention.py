"""Decoupled cross-attention as an attn2 replace patch.

    out = attn(q, k_text, v_text) + w * attn(q, K_ip[role], V_ip[role])

with ``role`` chosen per batch chunk from ``extra_options["cond_or_uncond"]``.
The call signature is ComfyUI's attn2 replace patch: ``q``, ``k``, ``v`` are
already projected (``[B, N, heads*dim_head]``) and the result goes through the
block's ``to_out``. The attention function is injected (ComfyUI passes its own
``optimized_attention``) so the text half is computed exactly as without the
patch; ``sdpa_attention`` is the stand-alone default.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F

from .injection import VisualPromptInjection, chunk_roles

AttentionFn = Callable[..., torch.Tensor]


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, **_) -> torch.Tensor:
    """``[B, N, H*D]`` attention with torch's scaled dot product kernel."""
    b = q.shape[0]
    q, k, v = (t.reshape(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, heads * q.shape[-1])


def _attend(attention: AttentionFn, q, k, v, extra_options: Mapping) -> torch.Tensor:
    return attention(q, k, v, extra_options["n_heads"], attn_precision=extra_options.get("attn_precision"),
                     transformer_options=extra_options)


class ImagePromptAttention:
    """The attn2 replace patch for one cross-attention layer.

    ``previous`` is the patch that was registered for this block before (another
    injector, or another pack's): it computes the text part, so injectors stack.
    Patch objects are immutable apart from device moves, so copying a model's
    options (``ModelPatcher.clone`` deep-copies them) shares them instead of
    duplicating their tensors."""

    def __init__(self, injection: VisualPromptInjection, layer: int, previous=None,
                 attention: AttentionFn = sdpa_attention):
        self.injection = injection
        self.layer = layer
        self.previous = previous
        self.attention = attention

    def __deepcopy__(self, memo) -> "ImagePromptAttention":
        return self

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: Mapping) -> torch.Tensor:
        if self.previous is not None:
            out = self.previous(q, k, v, extra_options)
        else:
            out = _attend(self.attention, q, k, v, extra_options)
        weight = self.injection.layer_weights[self.layer]
        if weight == 0.0 or not self.injection.active(extra_options):
            return out
        image = self.image_attention(q, extra_options)
        if out.requires_grad:  # training: the text attention's output is saved for its backward
            return out + image * weight
        return out.add_(image, alpha=weight)

    def image_attention(self, q: torch.Tensor, extra_options: Mapping) -> torch.Tensor:
        """``attn(q, K_ip, V_ip)`` with each batch chunk's own role; one call when the roles' token counts match."""
        size, roles = chunk_roles(self.injection, q.shape[0], extra_options)
        kv = [self.injection.kv(role, self.layer, q) for role in roles]
        if len({k.shape[0] for k, _ in kv}) == 1:
            k = torch.cat([k.expand(size, -1, -1) for k, _ in kv])
            v = torch.cat([v.expand(size, -1, -1) for _, v in kv])
            return _attend(self.attention, q, k, v, extra_options)
        return torch.cat([
            _attend(self.attention, q[i * size:(i + 1) * size], k.expand(size, -1, -1).contiguous(),
                    v.expand(size, -1, -1).contiguous(), extra_options)
            for i, (k, v) in enumerate(kv)
        ])

    def to(self, target) -> "ImagePromptAttention":
        self.injection.to(target)
        if hasattr(self.previous, "to"):
            self.previous = self.previous.to(target)
        return self

    def models(self) -> list:
        """Models the host's memory manager loads with the UNet: this injector's keys/values
        and whatever the wrapped previous patch declares."""
        previous = self.previous.models() if hasattr(self.previous, "models") else []
        return [*self.injection.managed_models, *previous]


def make_patches(injection: VisualPromptInjection, sites, existing: Mapping, attention: AttentionFn = sdpa_attention):
    """``(site, patch)`` for every site, each wrapping the patch already registered for
    it in ``existing`` (an attn2 ``patches_replace`` dict; a 3-tuple key wins over the
    block-wide 2-tuple key, as in ComfyUI's lookup)."""
    out = []
    for layer, site in enumerate(sites):
        previous = existing.get(site.key, existing.get(site.key[:2]))
        out.append((site, ImagePromptAttention(injection, layer, previous, attention)))
    return out
