"""EmoEditor's acceptance SSIM (``emotion_core.ssim`` mode ``"emoeditor"``: 224 px,
8-bit grayscale, 51x51 uniform window, data range 255), fast for a loop.

A uniform window's local sums come from an integral image (summed-area table)
instead of two 51-tap float64 convolutions; on 8-bit levels every sum is an
integer well inside float64's exact range, so the values are the same. The
source's levels and window moments are computed once per loop.
"""

from __future__ import annotations

import torch

from ..images import resize_exact, to_nchw
from ..ssim import EMOEDITOR_SIZE, EMOEDITOR_WINDOW

_LUMA = (0.299, 0.587, 0.114)
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def gray_levels(images: torch.Tensor, name: str) -> torch.Tensor:
    """IMAGE -> ``[B,224,224]`` float64 grayscale 8-bit levels (ITU-R 601 luma).

    Luma before the resize (both are linear, and the resize's weights are non-negative,
    so the order does not matter) resizes one channel instead of three. A float RGB batch
    (what the loop passes, already checked) skips the second full validation."""
    if images.ndim == 4 and images.shape[-1] == 3 and images.dtype == torch.float32:
        pixels = images.permute(0, 3, 1, 2).clamp(0.0, 1.0)
    else:
        pixels = to_nchw(images, name)
    weights = torch.tensor(_LUMA, dtype=pixels.dtype).view(1, 3, 1, 1)
    luma = resize_exact((pixels * weights).sum(dim=1, keepdim=True), EMOEDITOR_SIZE)[:, 0]
    return (luma * 255.0).round().clamp(0, 255).double()


def window_sums(values: torch.Tensor, size: int = EMOEDITOR_WINDOW) -> torch.Tensor:
    """Sums over every ``size x size`` window fully inside ``[B,H,W]`` ('valid'): ``[B,H-size+1,W-size+1]``."""
    table = torch.nn.functional.pad(values.cumsum(1).cumsum(2), (1, 0, 1, 0))
    return table[:, size:, size:] - table[:, :-size, size:] - table[:, size:, :-size] + table[:, :-size, :-size]


class EmoEditorSSIM:
    """``EmoEditorSSIM(source)(images) -> [N]``, equal to ``ssim(source, images, mode="emoeditor")``."""

    def __init__(self, source: torch.Tensor):
        x = gray_levels(source[:1], "source image")
        n = float(EMOEDITOR_WINDOW * EMOEDITOR_WINDOW)
        self._x = x
        self._mu_x = window_sums(x) / n
        self._var_x = window_sums(x * x) / n - self._mu_x**2
        self._n = n

    def __call__(self, source: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor:
        y = gray_levels(images, "candidate images")
        mu_y = window_sums(y) / self._n
        var_y = window_sums(y * y) / self._n - mu_y**2
        cov = window_sums(self._x * y) / self._n - self._mu_x * mu_y
        luminance = (2 * self._mu_x * mu_y + _C1) / (self._mu_x**2 + mu_y**2 + _C1)
        structure = (2 * cov + _C2) / (self._var_x + var_y + _C2)
        return (luminance * structure).flatten(1).mean(dim=1).float()
