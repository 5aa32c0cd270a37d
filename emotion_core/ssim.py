"""Structural similarity between a source image and edits of it (pytorch-msssim).

Two settings:
- ``"standard"``: RGB, 11x11 Gaussian window, data range 1 (the usual SSIM).
- ``"emoeditor"``: EmoEditor's acceptance gate — both images resized to 224x224,
  8-bit grayscale (ITU-R 601 luma), a 51x51 uniform window, data range 255.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim

from .errors import InvalidInputError
from .images import resize_exact, to_nchw

SSIM_MODES = ("standard", "emoeditor")
EMOEDITOR_SIZE = 224
EMOEDITOR_WINDOW = 51
_LUMA = (0.299, 0.587, 0.114)


def _uniform_window(size: int, channels: int) -> torch.Tensor:
    return torch.full((channels, 1, 1, size), 1.0 / size)


def _grayscale_uint8_levels(pixels: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return ((pixels * weights).sum(dim=1, keepdim=True) * 255.0).round().clamp(0, 255)


def ssim(source: torch.Tensor, candidates: torch.Tensor, mode: str = "standard") -> torch.Tensor:
    """SSIM of each candidate to the source, shape ``[B]``.

    ``source`` is an IMAGE batch of 1 (broadcast) or of the same size as ``candidates``.
    """
    if mode not in SSIM_MODES:
        raise InvalidInputError(f"ssim mode must be one of {SSIM_MODES}, got {mode!r}")
    src = to_nchw(source, "source image")
    cand = to_nchw(candidates, "candidate images")
    if src.shape[0] == 1 and cand.shape[0] > 1:
        src = src.expand(cand.shape[0], -1, -1, -1)
    if src.shape[0] != cand.shape[0]:
        raise InvalidInputError(f"source batch ({src.shape[0]}) must be 1 or match the candidates ({cand.shape[0]})")
    if mode == "emoeditor":
        # float64: E[x^2] - E[x]^2 on 0..255 values loses ~1e-4 of SSIM in float32.
        src = _grayscale_uint8_levels(resize_exact(src, EMOEDITOR_SIZE)).double()
        cand = _grayscale_uint8_levels(resize_exact(cand, EMOEDITOR_SIZE)).double()
        window = _uniform_window(EMOEDITOR_WINDOW, 1).to(src)
        return _ssim(src, cand, data_range=255.0, size_average=False, win=window).float()
    if src.shape[-2:] != cand.shape[-2:]:
        raise InvalidInputError(
            f"source ({src.shape[-2]}x{src.shape[-1]}) and candidates ({cand.shape[-2]}x{cand.shape[-1]}) "
            "must have the same size for standard SSIM"
        )
    if min(src.shape[-2:]) < 11:
        raise InvalidInputError(f"standard SSIM needs images of at least 11x11 pixels, got {src.shape[-2]}x{src.shape[-1]}")
    return _ssim(src, cand, data_range=1.0, size_average=False)
