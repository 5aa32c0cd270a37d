"""EmoEditor's ESMI (Emotion-Structure Matching Index), x100, higher is better,
computed as EmoEditor's ``metric_ESMI.py`` computes it:

    ESMI = 100 * (alpha * S_str + (1 - alpha) * S_emo),  alpha = 0.5

- **Input.** Each image is read as that script reads its files:
  ``PIL.Image.open(file).resize((224, 224)).convert("RGB")``, so PIL's default filter
  for the file's mode (bicubic; nearest for ``1`` and ``P`` images; RGBA and LA
  resized premultiplied), no EXIF rotation, the 8-bit result kept (``esmi_pixels``).
  The predictor gets those pixels as ``ToTensor`` makes them (uint8 / 255, no
  normalisation). An IMAGE tensor is first made the 8-bit RGB picture it would be
  saved as (rounded), then goes the same way.
- ``S_emo`` (emotion score): with the one-hot target t and the predicted
  distribution p, ``KL(t || p)`` as ``scipy.stats.entropy(t, p)`` computes it (p
  normalised to sum 1; for a one-hot t that is ``-log(p_t / sum p)``, infinite when
  p_t is 0), and ``S_emo = max(0, KL_src - KL_edit) / (KL_src + 1e-10)``: the
  fraction of the source's distance to the target that the edit closed (0 when the
  target got less likely). ``max`` is Python's: ``inf - inf`` gives 0, ``inf / inf``
  stays NaN, as in the script.
- ``S_str`` (structure score): the source's *emotion region* is its GradCAM map
  (see ``gradcam``: pytorch-grad-cam's GradCAM on EmoEditor's ResNet-18
  ``layer4[-1]``, for the predicted class) thresholded at > 0.5, a 224x224 mask M.
  ``L_emo = mean(|src*M - edit*M|)`` and ``L_full = mean(|src - edit|)`` over the
  224x224x3 uint8 values in float64, and ``S_str = L_emo / (L_full + 1e-10)``: the
  share of the pixel change that falls inside the emotion region. An unchanged image
  scores 0 on both.

The probabilities may come from any critic (the paper: its ResNet-18, which this
project's ``EmoEditorResNetCritic`` runs exactly, its alphabetical classes remapped
to the canonical order; the target is looked up in the same order). The source's
pixels, distribution and emotion region are computed once for any number of edits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..critics.base import EmotionCritic
from ..errors import InvalidInputError
from ..images import as_rgb_batch, to_pil
from ..taxonomy import emotion_index
from .gradcam import gradcam

ESMI_SIZE = 224
ALPHA = 0.5
REGION_THRESHOLD = 0.5
_EPS = 1e-10

EsmiImage = str | os.PathLike | Image.Image | torch.Tensor


def esmi_pixels(image: EsmiImage, name: str = "ESMI image") -> np.ndarray:
    """One image as ESMI reads it: ``uint8 [224,224,3]`` (see the module docstring).

    ``image`` is a file path, a PIL image (resized in its own mode) or one IMAGE
    ``[H,W,C]`` / ``[1,H,W,C]`` in 0..1."""
    if isinstance(image, torch.Tensor):
        if image.ndim == 4 and image.shape[0] != 1:
            raise InvalidInputError(f"{name}: expected one image, got a batch of {image.shape[0]}")
        return _resized(to_pil(as_rgb_batch(image, name)))
    if isinstance(image, Image.Image):
        return _resized(image)
    from PIL import UnidentifiedImageError

    try:
        with Image.open(image) as opened:
            return _resized(opened)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image not found: {image}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{image}: not a readable image file ({exc})") from exc


def _resized(image: Image.Image) -> np.ndarray:
    # Image.resize's default filter depends on the mode: this is the script's call, unchanged.
    return np.array(image.resize((ESMI_SIZE, ESMI_SIZE)).convert("RGB"), dtype=np.uint8)


def esmi_batch(images: EsmiImage | Sequence[EsmiImage], name: str = "ESMI images") -> np.ndarray:
    """Images as ``uint8 [B,224,224,3]``: an IMAGE batch ``[B,H,W,C]``, or a sequence of
    files, PIL images or single IMAGEs, or one of them."""
    if isinstance(images, torch.Tensor):
        batch = as_rgb_batch(images, name)
        items: Sequence[EsmiImage] = [batch[i] for i in range(batch.shape[0])]
    elif isinstance(images, (str, os.PathLike, Image.Image)):
        items = [images]
    else:
        items = list(images)
    if not items:
        raise InvalidInputError(f"{name}: no images")
    return np.stack([esmi_pixels(item, name) for item in items])


def _predictor_input(pixels: np.ndarray) -> torch.Tensor:
    """``uint8 [B,224,224,3]`` -> IMAGE float32 in 0..1, the values ``ToTensor`` gives."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).float().div(255)


@dataclass(frozen=True)
class EsmiSource:
    """What ESMI needs of the source, computed once: its 224 pixels, distribution and emotion region."""

    pixels: np.ndarray  # uint8 [224,224,3]
    distribution: torch.Tensor  # [8] canonical order
    region: torch.Tensor  # [224,224] bool


@dataclass(frozen=True)
class EsmiScores:
    esmi: torch.Tensor  # [B] x100, float64
    emotion: torch.Tensor  # [B] S_emo in [0,1]
    structure: torch.Tensor  # [B] S_str in [0,1]


def prepare_source(critic: EmotionCritic, source: EsmiImage) -> EsmiSource:
    """The source's ESMI pixels, distribution and GradCAM emotion region (an IMAGE batch: its first image)."""
    if isinstance(source, torch.Tensor) and source.ndim == 4:
        source = source[:1]
    pixels = esmi_pixels(source, "ESMI source image")
    image = _predictor_input(pixels[None])
    distribution = critic.predict(image)[0]
    cam = gradcam(critic, image, size=(ESMI_SIZE, ESMI_SIZE))  # the ESMI grid, whatever the critic's input size
    return EsmiSource(pixels, distribution, cam[0] > REGION_THRESHOLD)


def _kl_from_one_hot(distributions: torch.Tensor, index: int) -> torch.Tensor:
    """``scipy.stats.entropy(one_hot(index), p)`` for each row: ``-log(p_index / sum p)``."""
    p = distributions.double()
    return -torch.log(p[..., index] / p.sum(dim=-1))


def emotion_score(source_distribution: torch.Tensor, distributions: torch.Tensor, target: str) -> torch.Tensor:
    """``S_emo`` (float64) for each row of ``distributions`` ``[B,8]`` against the source's ``[8]``."""
    index = emotion_index(target)
    kl_source = _kl_from_one_hot(source_distribution, index)
    closed = kl_source - _kl_from_one_hot(distributions, index)
    closed = torch.where(closed > 0, closed, torch.zeros_like(closed))  # Python's max(0, x): NaN -> 0
    return closed / (kl_source + _EPS)


def structure_score(source_pixels: np.ndarray, edit_pixels: np.ndarray, region: torch.Tensor) -> torch.Tensor:
    """``S_str`` (float64) for each edit ``uint8 [B,224,224,3]`` against the source ``uint8 [224,224,3]``."""
    source = torch.from_numpy(np.asarray(source_pixels)).double()
    edits = torch.from_numpy(np.asarray(edit_pixels)).double()
    mask = region.to(torch.float64).unsqueeze(-1)
    inside = (source * mask - edits * mask).abs().mean(dim=(1, 2, 3))
    full = (source - edits).abs().mean(dim=(1, 2, 3))
    return inside / (full + _EPS)


def esmi(critic: EmotionCritic, source: EsmiSource | EsmiImage, edits: EsmiImage | Sequence[EsmiImage],
         target: str) -> EsmiScores:
    """ESMI of each edit against the source for ``target``. ``edits``: an IMAGE batch (any
    size), or files / PIL images (read as the script reads them: prefer files for scoring
    files, their mode decides PIL's filter)."""
    if not isinstance(source, EsmiSource):
        source = prepare_source(critic, source)
    pixels = esmi_batch(edits, "ESMI edited images")
    distributions = critic.predict(_predictor_input(pixels))
    s_emo = emotion_score(source.distribution, distributions, target)
    s_str = structure_score(source.pixels, pixels, source.region)
    return EsmiScores(100.0 * (ALPHA * s_str + (1.0 - ALPHA) * s_emo), s_emo, s_str)
