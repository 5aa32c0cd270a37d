"""GradCAM (Selvaraju et al. 2017) over any emotion critic, for the "emotion region"
of EmoEditor's ESMI.

The map is computed on one feature layer of the critic:
- ``critic.gradcam_input_layer`` when the critic names one (EmoEditor's ResNet-18:
  ``layer4[-1]``, the layer EmoEditor's own metric uses);
- otherwise the first LayerNorm (``ln_1``) of the last block of a vision
  transformer (``...resblocks.N``): the block's *output* patch tokens never reach
  a class-token head, its normalised *input* does (as pytorch-grad-cam advises for
  ViTs); tokens are laid back on their square grid, class/register tokens dropped;
- otherwise the last ``Conv2d``.

For each image, the steps of pytorch-grad-cam's ``GradCAM`` with one target layer and
the default target (what EmoEditor's ``metric_ESMI.py`` runs): class score = the
critic's logit of the class it predicts (in its own class order, before softmax),
weights = spatial mean of d score / d activation per channel, map = ReLU(sum_c w_c A_c),
min-max scaled (``(m - min) / (1e-7 + max)``), bilinearly resized (half-pixel centres,
edges clamped: OpenCV's ``INTER_LINEAR``) to the critic's input size, then ReLU and
min-max scaled once more. The second scaling matters: a peak between pixel centres
is lowered by the resize, and the scaling brings it back to 1, which moves the
``> 0.5`` region ESMI thresholds.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..critics.base import EmotionCritic
from ..errors import InvalidInputError
from ..images import to_nchw

_RESBLOCK = re.compile(r"(^|\.)resblocks\.(\d+)$")
_EPS = 1e-7


def gradcam_layer(critic: nn.Module) -> nn.Module:
    """The feature layer GradCAM reads for ``critic`` (see module docstring)."""
    named = getattr(critic, "gradcam_input_layer", None)
    if isinstance(named, nn.Module):
        return named
    blocks = [(name, module) for name, module in critic.named_modules() if _RESBLOCK.search(name)]
    if blocks:
        last = blocks[-1][1]
        return getattr(last, "ln_1", last)
    convs = [module for module in critic.modules() if isinstance(module, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise InvalidInputError(
        f"critic {type(critic).__name__} has no convolution or transformer block for GradCAM; "
        "give it a gradcam_input_layer property"
    )


def as_spatial(activations: torch.Tensor) -> torch.Tensor:
    """Layer output -> ``[B,C,h,w]``: conv maps as they are, ViT tokens ``[B,N,D]`` on their grid."""
    if activations.ndim == 4:
        return activations
    if activations.ndim == 3:
        tokens = activations.shape[1]
        for extra in (1, 0, 5, 4, 2):  # class token, none, class + registers
            side = math.isqrt(max(tokens - extra, 0))
            if side > 0 and side * side == tokens - extra:
                grid = activations[:, extra:]
                return grid.transpose(1, 2).reshape(activations.shape[0], activations.shape[2], side, side)
    raise InvalidInputError(f"GradCAM layer output of shape {tuple(activations.shape)} is not a feature map")


def _layer_output(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def gradcam(critic: EmotionCritic, images: torch.Tensor, layer: nn.Module | None = None,
            size: tuple[int, int] | None = None) -> torch.Tensor:
    """GradCAM maps ``[B,h,w]`` in [0,1] for IMAGE ``[B,H,W,C]``, for the class each image is
    predicted as; upsampled to ``size`` (default: the critic's input size) before the final
    ReLU and scaling, as pytorch-grad-cam scales to its target size."""
    layer = gradcam_layer(critic) if layer is None else layer
    pixels = to_nchw(images, "GradCAM image").to(critic.device, critic.dtype)
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        captured.append(_layer_output(output))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            # Input requiring grad: a graph exists even when the critic's weights are frozen.
            inputs = critic.preprocess(pixels).detach().requires_grad_(True)
            logits = critic.logits(inputs).float()
            if not captured:
                raise InvalidInputError(f"GradCAM layer {type(layer).__name__} was not run by the critic")
            activations = captured[-1]
            chosen = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
            (grads,) = torch.autograd.grad(chosen, activations)
    finally:
        handle.remove()
    acts = as_spatial(activations.detach().float())
    grads = as_spatial(grads.float())
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = _min_max(F.relu((weights * acts).sum(dim=1)))
    cam = F.interpolate(cam.unsqueeze(1), size=size or inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _min_max(F.relu(cam)).cpu()


def _min_max(cam: torch.Tensor) -> torch.Tensor:
    """Each map ``[B,h,w]`` shifted to min 0 and divided by ``1e-7 + max`` (pytorch-grad-cam's scaling)."""
    flat = cam.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    return (flat / (_EPS + flat.max(dim=1, keepdim=True).values)).view_as(cam)
