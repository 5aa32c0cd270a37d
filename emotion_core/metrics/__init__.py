"""Evaluation metrics for emotion edits: SSIM (``emotion_core.ssim``), EmoEditor's
ESMI with a generic GradCAM, and EmoEdit's Emo-A / Emo-S."""

from ..ssim import ssim
from .emotion import emo_a, emo_s, target_probability
from .esmi import (EsmiScores, EsmiSource, emotion_score, esmi, esmi_batch, esmi_pixels, prepare_source,
                   structure_score)
from .gradcam import gradcam, gradcam_layer

__all__ = [
    "EsmiScores", "EsmiSource", "emo_a", "emo_s", "emotion_score", "esmi", "esmi_batch", "esmi_pixels", "gradcam",
    "gradcam_layer", "prepare_source", "ssim", "structure_score", "target_probability",
]
