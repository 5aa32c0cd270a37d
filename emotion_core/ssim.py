"""Structural similarity between a source image and edits of it.

Two settings:
- ``"standard"``: RGB, 11x11 Gaussian window, data range 1 (the usual SSIM, pytorch-msssim).
- ``"emoeditor"``: EmoEditor's acceptance gate, its ``utils.cal_ssim`` on the 224x224
  images its ``test.py`` compares: each RGB channel to 8 bits the way test.py does it
  (``x.mul(255).clamp(0, 255).byte()``, which truncates), OpenCV's 8-bit RGB-to-gray
  (15-bit fixed-point ITU-R 601 weights, rounded), then scikit-image's
  ``structural_similarity`` with its defaults for 8-bit input and ``win_size=51``: a
  51x51 uniform window, sample covariance (N/(N-1)), data range 255, the mean over the
  windows that fit inside the image. Images that are not 224x224 are first resized
  to it (antialiased bilinear), as this project compares edits at any size.

The gate is computed from integral images (summed-area tables) instead of 51-tap
convolutions: on 8-bit levels every window sum is an integer well inside float64's
exact range, so the values are scikit-image's. ``EmoEditorSSIM`` keeps the source's
levels and window moments for a loop that compares many candidates with one source.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim

from .errors import InvalidInputError
from .images import resize_exact, to_nchw

SSIM_MODES = ("standard", "emoeditor")
EMOEDITOR_SIZE = 224
EMOEDITOR_WINDOW = 51
# OpenCV's cvtColor(RGB2GRAY) on 8-bit images: (9798 R + 19235 G + 3735 B + 2^14) >> 15
_GRAY_WEIGHTS = (9798, 19235, 3735)
_GRAY_SHIFT = 15
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def emoeditor_levels(pixels: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` RGB in 0..1 -> ``[B,224,224]`` float64 gray levels as EmoEditor's gate sees them."""
    if tuple(pixels.shape[-2:]) != (EMOEDITOR_SIZE, EMOEDITOR_SIZE):
        pixels = resize_exact(pixels.float(), EMOEDITOR_SIZE)
    rgb = (pixels.float() * 255.0).clamp(0, 255).to(torch.uint8).long()  # truncation, as test.py's .byte()
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=torch.long, device=rgb.device).view(1, 3, 1, 1)
    gray = ((rgb * weights).sum(dim=1) + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.double()


def _window_means(values: torch.Tensor, size: int = EMOEDITOR_WINDOW) -> torch.Tensor:
    """Means over every ``size x size`` window fully inside ``[B,H,W]``: ``[B,H-size+1,W-size+1]``."""
    table = torch.nn.functional.pad(values.cumsum(1).cumsum(2), (1, 0, 1, 0))
    sums = table[:, size:, size:] - table[:, :-size, size:] - table[:, size:, :-size] + table[:, :-size, :-size]
    return sums / float(size * size)


def uniform_window_ssim(x: torch.Tensor, y: torch.Tensor, window: int, data_range: float) -> torch.Tensor:
    """scikit-image's ``structural_similarity`` of ``[B,H,W]`` planes with its defaults (uniform
    ``window x window`` filter, sample covariance, K1 0.01, K2 0.03), one float64 value per plane:
    the mean SSIM over the windows that fit inside the plane (skimage's border crop)."""
    x, y = x.double(), y.double()
    if min(x.shape[-2:]) < window:
        raise InvalidInputError(f"SSIM with a {window}x{window} window needs planes of at least that size, "
                                f"got {x.shape[-2]}x{x.shape[-1]}")
    n = float(window * window)
    sample = n / (n - 1.0)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _window_means(x, window), _window_means(y, window)
    var_x = sample * (_window_means(x * x, window) - mu_x**2)
    var_y = sample * (_window_means(y * y, window) - mu_y**2)
    cov = sample * (_window_means(x * y, window) - mu_x * mu_y)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * (2 * cov + c2) / (var_x + var_y + c2)).flatten(1).mean(dim=1)


class EmoEditorSSIM:
    """``EmoEditorSSIM(source)(source, images) -> [N]`` (float64): EmoEditor's gate of each image against
    ``source`` (IMAGE ``[1 or N,H,W,C]``), whose levels and moments are computed once. The
    first argument of the call is ignored (the critic loop's similarity signature)."""

    def __init__(self, source: torch.Tensor):
        self._x = emoeditor_levels(to_nchw(source, "source image"))
        self._mu_x = _window_means(self._x)
        self._xx = _window_means(self._x * self._x)

    def __call__(self, source: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor:
        y = emoeditor_levels(to_nchw(images, "candidate images"))
        if self._x.shape[0] not in (1, y.shape[0]):
            raise InvalidInputError(f"source batch ({self._x.shape[0]}) must be 1 or match the candidates ({y.shape[0]})")
        n = float(EMOEDITOR_WINDOW * EMOEDITOR_WINDOW)
        sample = n / (n - 1.0)  # scikit-image's use_sample_covariance=True
        mu_y = _window_means(y)
        var_x = sample * (self._xx - self._mu_x**2)
        var_y = sample * (_window_means(y * y) - mu_y**2)
        cov = sample * (_window_means(self._x * y) - self._mu_x * mu_y)
        luminance = (2 * self._mu_x * mu_y + _C1) / (self._mu_x**2 + mu_y**2 + _C1)
        structure = (2 * cov + _C2) / (var_x + var_y + _C2)
        return (luminance * structure).flatten(1).mean(dim=1)  # float64: the gate compares it as skimage's value


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
        return EmoEditorSSIM(source)(None, candidates).float()
    if src.shape[-2:] != cand.shape[-2:]:
        raise InvalidInputError(
            f"source ({src.shape[-2]}x{src.shape[-1]}) and candidates ({cand.shape[-2]}x{cand.shape[-1]}) "
            "must have the same size for standard SSIM"
        )
    if min(src.shape[-2:]) < 11:
        raise InvalidInputError(f"standard SSIM needs images of at least 11x11 pixels, got {src.shape[-2]}x{src.shape[-1]}")
    return _ssim(src, cand, data_range=1.0, size_average=False)
