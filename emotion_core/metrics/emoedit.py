"""EmoEdit's edit metrics, as its ``metrics/Metric_args.py`` and ``metrics/ACC_args.py`` compute them.

- **Pair preparation** (``emoedit_pair``): the source is centre-cropped to a square (left/top
  ``(side - min) // 2``, right/bottom ``(side + min) // 2``) and resized to 512x512; the edit is
  resized to 512x512 without a crop; both with PIL's ``Image.resize`` default filter for the
  file's mode (bicubic for RGB), then ``np.array``. Here both are also converted to RGB after
  resizing (the script does not; for RGB files that changes nothing, and an RGBA or gray file
  would otherwise not compare).
- **SSIM** (``emoedit_ssim``): ``skimage.metrics.structural_similarity(edit, source,
  channel_axis=2)`` with its defaults on those uint8 arrays: per RGB channel a 7x7 uniform
  window, sample covariance, data range 255 (from the uint8 dtype), the mean over the windows
  inside the image; then the mean over the three channels. Not EmoEditor's gate (gray, 51x51
  window, 224x224; ``emotion_core.ssim``) and not the Gaussian SSIM of ``score``.
- **Emo-S** (``emoedit_emo_s``): ``p_target(edit) - p_target(source)`` with the classifier run on
  the two prepared 512x512 images (``Emo_S.count_emo_s``).
- **Emo-A**: top-1 of the classifier on the edit file as read is the target (``ACC_args``);
  ``emotion_core.metrics.emotion.emo_a``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from ..critics.base import EmotionCritic
from ..errors import InvalidInputError
from ..ssim import uniform_window_ssim
from ..taxonomy import emotion_index

EMOEDIT_SIZE = 512
EMOEDIT_WINDOW = 7  # skimage's default win_size
UINT8_RANGE = 255.0


def centre_square(image: Image.Image) -> Image.Image:
    """EmoEdit's ``crop_img`` crop: the centred square of side ``min(width, height)``."""
    width, height = image.size
    side = min(width, height)
    return image.crop(((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2))


def _open(path: str | os.PathLike, crop: bool) -> np.ndarray:
    try:
        with Image.open(path) as opened:
            image = centre_square(opened) if crop else opened
            return np.array(image.resize((EMOEDIT_SIZE, EMOEDIT_SIZE)).convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image not found: {path}") from exc
    except OSError as exc:
        raise InvalidInputError(f"{path}: not a readable image file ({exc})") from exc


def emoedit_pair(edit: str | os.PathLike, source: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(edit, source)`` as EmoEdit's metric script compares them: uint8 ``[512,512,3]`` each."""
    return _open(edit, crop=False), _open(source, crop=True)


def emoedit_ssim(edit: np.ndarray, source: np.ndarray) -> float:
    """EmoEdit's SSIM of two uint8 ``[H,W,3]`` arrays (mean over the RGB channels)."""
    if edit.shape != source.shape or edit.ndim != 3:
        raise InvalidInputError(f"EmoEdit SSIM compares two [H,W,3] images of one size, got {edit.shape} "
                                f"and {source.shape}")
    return float(uniform_window_ssim(_planes(edit), _planes(source), EMOEDIT_WINDOW, UINT8_RANGE).mean())


def _planes(array: np.ndarray) -> torch.Tensor:
    """uint8 ``[H,W,C]`` -> ``[C,H,W]``: one SSIM plane per channel."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def as_image(array: np.ndarray) -> torch.Tensor:
    """uint8 ``[H,W,3]`` -> IMAGE ``[1,H,W,3]`` float32 in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(array)).float().div(255.0).unsqueeze(0)


def emoedit_emo_s(critic: EmotionCritic, edit: np.ndarray, source: np.ndarray, target: str) -> float:
    """EmoEdit's Emo-S for one prepared pair: the rise of the target's probability."""
    probabilities = critic.predict(torch.cat([as_image(edit), as_image(source)]))
    index = emotion_index(target)
    return float(probabilities[0, index] - probabilities[1, index])
