"""Visual prompt injection with gradients, for training.

The inference injection (``visual_prompt.injection``) projects image keys/values once,
without gradients. Training needs them recomputed from the adapter's current weights on
every forward, so this class gives the attn2 patches (``ImagePromptAttention``) the same
interface — ``layer_weights``, ``active``, ``roles_for``, ``kv`` — over live parameters.
The decoupled attention itself stays the one implementation in ``visual_prompt.attention``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..visual_prompt import NEGATIVE, NEGATIVE_VISUAL, POSITIVE, VisualPromptAdapter

# Branch condition indices in training: the preferred sample sees the positive visual
# prompt, the rejected one the negative visual prompt (index 2, as in the DPO guider).
ROLES = {0: POSITIVE, 1: NEGATIVE, 2: NEGATIVE_VISUAL}
WINNER_INDEX, LOSER_INDEX = 0, 2


class TrainableInjection:
    """Image tokens per role (set per pair) -> keys/values through ``adapter``'s live weights.
    ``adapter`` can be swapped (trained model vs frozen reference) between forwards."""

    def __init__(self, adapter: VisualPromptAdapter, weight: float = 1.0):
        self.adapter = adapter
        self.layer_weights = (float(weight),) * len(adapter.ip_adapter)
        self.tokens: dict[str, torch.Tensor] = {}

    def active(self, extra_options: Mapping) -> bool:
        return True

    def roles_for(self, cond_or_uncond: Sequence[int], declared: Mapping[int, str] | None = None) -> list[str]:
        return [ROLES[index] for index in cond_or_uncond]

    def kv(self, role: str, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokens[role].to(like.device, like.dtype)
        weights = self.adapter.ip_adapter[str(2 * layer + 1)]
        return tokens @ weights.to_k_ip.weight.to(like.dtype).T, tokens @ weights.to_v_ip.weight.to(like.dtype).T
