"""The guidance formulas, written once: classifier-free guidance, Emotion-Director's
three-branch guidance with a negative visual prompt (the inference counterpart of
negative-visual DPO), and InstructPix2Pix's image guidance.

    ε = ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv)

- ε_p: text + the visual prompt of the target emotion (positive branch),
- ε_nv: the same text + the visual prompt of another emotion (negative visual branch),
- ε_u: the unconditional / negative-text branch,
- s: the usual CFG scale, s_v: the visual guidance scale.

The text term pushes towards the prompt; the visual term pushes away from what the
other emotion's visual prompt would add under the *same* text, so it moves along
the emotion difference only, not along semantics. The coefficients sum to one, so
the formula is the same for noise (ε) and for denoised (x0) predictions, which is
what ComfyUI's guiders combine. With s_v = 0 it is exactly classifier-free guidance.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInputError


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance ``uncond + (cond − uncond)·scale``, as ComfyUI's ``cfg_function``
    writes it (same operation order, so results match it bit for bit)."""
    return uncond + (cond - uncond) * scale


def three_branch_guidance(positive: torch.Tensor, negative_visual: torch.Tensor | None, uncond: torch.Tensor | None,
                          cfg: float, visual_scale: float) -> torch.Tensor:
    """ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv). A missing branch means its term is off:
    ``uncond=None`` is only allowed with s = 1, ``negative_visual=None`` only with s_v = 0
    (the callers skip evaluating a branch whose weight is zero)."""
    if uncond is None:
        if not math.isclose(cfg, 1.0):
            raise InvalidInputError(f"the unconditional branch is needed for cfg {cfg} (only cfg 1 can skip it)")
        out = positive
    else:
        out = cfg_combine(positive, uncond, cfg)
    if visual_scale != 0.0:
        if negative_visual is None:
            raise InvalidInputError(f"visual guidance {visual_scale} needs the negative visual branch")
        out = out + (positive - negative_visual) * visual_scale
    return out


def image_guidance_combine(text: torch.Tensor, image: torch.Tensor, uncond: torch.Tensor, text_scale: float,
                           image_scale: float) -> torch.Tensor:
    """InstructPix2Pix's three-branch guidance (diffusers' ``StableDiffusionInstructPix2PixPipeline``):
    ``ε_u + s_t·(ε_t − ε_i) + s_i·(ε_i − ε_u)`` with ε_t = instruction + image, ε_i = no instruction +
    image, ε_u = neither."""
    return uncond + text_scale * (text - image) + image_scale * (image - uncond)
