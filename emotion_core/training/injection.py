"""Visual prompt injection with gradients, for training.

The inference injection (``visual_prompt.injection``) projects image keys/values once,
without gradients. Training needs them recomputed from the adapter's current weights on
every forward, so this class gives the attn2 patches (``ImagePromptAttention``) the same
interface — ``layer_weights``, ``active``, ``roles_for``, ``kv`` — over live parameters.
The decoupled attention itself stays the one implementation in ``visual_prompt.attention``.

A training batch is B pairs, run as 2B chunks of one sample each (the B preferred images,
then the B rejected ones); every chunk has its own tokens: chunk i < B the positive visual
prompt of pair i, chunk B + i the negative visual prompt of pair i.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..visual_prompt import VisualPromptAdapter


class TrainableInjection:
    """Image tokens per batch chunk (set per batch) -> keys/values through ``adapter``'s live
    weights. ``adapter`` can be swapped (trained model vs frozen reference) between forwards."""

    def __init__(self, adapter: VisualPromptAdapter, weight: float = 1.0):
        self.adapter = adapter
        self.layer_weights = (float(weight),) * len(adapter.ip_adapter)
        self.tokens: list[torch.Tensor] = []

    def active(self, extra_options: Mapping) -> bool:
        return True

    def roles_for(self, cond_or_uncond: Sequence[int], declared: Mapping[int, str] | None = None) -> list[int]:
        return list(cond_or_uncond)

    def kv(self, chunk: int, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokens[chunk].to(like.device, like.dtype)
        weights = self.adapter.ip_adapter[str(2 * layer + 1)]
        return tokens @ weights.to_k_ip.weight.to(like.dtype).T, tokens @ weights.to_v_ip.weight.to(like.dtype).T
