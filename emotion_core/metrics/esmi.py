"""EmoEditor's ESMI (Emotion-Structure Matching Index), x100, higher is better.

    ESMI = 100 * (alpha * S_str + (1 - alpha) * S_emo),  alpha = 0.5

Both images are resized to 224x224 and quantised to 8-bit levels (what the
paper's PIL pipeline feeds its predictor and its L1), then:

- ``S_emo`` (emotion score): with the one-hot target t, KL(t || p) = -log p_t, so
  ``S_emo = max(0, KL(t||p_src) - KL(t||p_edit)) / (KL(t||p_src) + 1e-10)``: the
  fraction of the source's distance to the target that the edit closed (0 when
  the target got less likely).
- ``S_str`` (structure score): the source's *emotion region* is its GradCAM map
  (critic's predicted class, see ``gradcam``) thresholded at > 0.5, a mask M of
  224x224. ``L_emo = mean(|src - edit| * M)`` and ``L_full = mean(|src - edit|)``,
  both averaged over all 224x224x3 values on the 0..255 scale, and
  ``S_str = L_emo / (L_full + 1e-10)``: the share of the pixel change that falls
  inside the emotion region (edits that change what carries the emotion, not
  the whole scene, score high). An unchanged image scores 0 on both.

Differences from the paper's script, none of which changes the formula: the
224 resize is this project's antialiased bilinear (PIL's bicubic there), the
probabilities come from any critic (the paper: its ResNet-18), and the source's
probabilities and emotion region are computed once for any number of edits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..critics.base import EmotionCritic
from ..images import resize_exact, to_nchw
from ..taxonomy import emotion_index
from .gradcam import gradcam

ESMI_SIZE = 224
ALPHA = 0.5
REGION_THRESHOLD = 0.5
_EPS = 1e-10
_MIN_PROB = 1e-12


def quantised_224(images: torch.Tensor, name: str) -> torch.Tensor:
    """IMAGE -> ``[B,3,224,224]`` on 8-bit levels 0..255 (float64)."""
    pixels = resize_exact(to_nchw(images, name), ESMI_SIZE)
    return (pixels * 255.0).round().double()


def _as_image(levels: torch.Tensor) -> torch.Tensor:
    return (levels / 255.0).float().permute(0, 2, 3, 1)


@dataclass(frozen=True)
class EsmiSource:
    """What ESMI needs of the source, computed once: its 224 levels, distribution and emotion region."""

    levels: torch.Tensor  # [1,3,224,224] 0..255
    distribution: torch.Tensor  # [8] canonical order
    region: torch.Tensor  # [224,224] bool


@dataclass(frozen=True)
class EsmiScores:
    esmi: torch.Tensor  # [B] x100
    emotion: torch.Tensor  # [B] S_emo in [0,1]
    structure: torch.Tensor  # [B] S_str in [0,1]


def prepare_source(critic: EmotionCritic, source: torch.Tensor) -> EsmiSource:
    levels = quantised_224(source[:1], "ESMI source image")
    image = _as_image(levels)
    distribution = critic.predict(image)[0]
    cam = gradcam(critic, image)
    if cam.shape[-2:] != (ESMI_SIZE, ESMI_SIZE):
        cam = F.interpolate(cam.unsqueeze(1), size=(ESMI_SIZE, ESMI_SIZE), mode="bilinear", align_corners=False)[:, 0]
    return EsmiSource(levels, distribution, cam[0] > REGION_THRESHOLD)


def emotion_score(source_distribution: torch.Tensor, distributions: torch.Tensor, target: str) -> torch.Tensor:
    """``S_emo`` for each row of ``distributions`` ``[B,8]``."""
    index = emotion_index(target)
    kl_source = -torch.log(source_distribution[index].double().clamp_min(_MIN_PROB))
    kl_edit = -torch.log(distributions[:, index].double().clamp_min(_MIN_PROB))
    return ((kl_source - kl_edit).clamp_min(0.0) / (kl_source + _EPS)).float()


def structure_score(source_levels: torch.Tensor, edit_levels: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``S_str`` for each edit ``[B,3,224,224]`` against the source ``[1,3,224,224]``."""
    change = (source_levels - edit_levels).abs()
    inside = (change * region.to(change.dtype)).mean(dim=(1, 2, 3))
    full = change.mean(dim=(1, 2, 3))
    return (inside / (full + _EPS)).float()


def esmi(critic: EmotionCritic, source: EsmiSource | torch.Tensor, edits: torch.Tensor, target: str) -> EsmiScores:
    """ESMI of each edit (IMAGE batch, any size) against the source for ``target``."""
    if not isinstance(source, EsmiSource):
        source = prepare_source(critic, source)
    levels = quantised_224(edits, "ESMI edited images")
    distributions = critic.predict(_as_image(levels))
    s_emo = emotion_score(source.distribution, distributions, target)
    s_str = structure_score(source.levels, levels, source.region)
    return EsmiScores(100.0 * (ALPHA * s_str + (1.0 - ALPHA) * s_emo), s_emo, s_str)
