"""The Diffusion-DPO objective (Wallace et al., 2023) with Emotion-Director's negative
visual prompt.

For a pair (x_w preferred, x_l rejected) noised with the same ε at the same timestep t,
with per-sample denoising errors e(x) = mean ‖ε − ε_θ(x_t, c)‖² of the trained model θ
and of the frozen reference (the adapter before training):

    Δ_θ   = e_θ(x_w, c_w) − e_θ(x_l, c_l)
    Δ_ref = e_ref(x_w, c_w) − e_ref(x_l, c_l)
    loss  = −log σ(−β/2 · (Δ_θ − Δ_ref))

where c_w = text + the positive visual prompt and c_l = the same text + the *negative*
visual prompt (another emotion's): the model is rewarded for denoising the preferred
image better under the target emotion's visual prompt and the rejected one worse under
the other emotion's, relative to where it started. β absorbs the paper's T·ω(λ)
factor (their SD1.5 runs use β = 5000 with errors averaged over latent elements).
The *margin* (Δ_ref − Δ_θ) is 0 at the start and grows as the preference is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DPOTerms:
    loss: torch.Tensor  # scalar
    margin: torch.Tensor  # per pair: Δ_ref − Δ_θ (> 0: preference learned)
    accuracy: torch.Tensor  # scalar: share of pairs with a positive margin


def per_sample_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample over all non-batch dimensions, in float32."""
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)


def diffusion_dpo_loss(model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
                       beta: float) -> DPOTerms:
    """Loss from per-sample errors ``[B]`` of the trained model and the reference."""
    model_diff = model_w - model_l
    ref_diff = ref_w - ref_l
    inside = -0.5 * beta * (model_diff - ref_diff)
    margin = (ref_diff - model_diff).detach()
    return DPOTerms(-F.logsigmoid(inside).mean(), margin, (margin > 0).float().mean())
