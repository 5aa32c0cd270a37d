"""Emotion critics: images -> probabilities over the eight emotions (canonical order).

Importing this package is cheap: open_clip and torchvision are imported only
when a critic that needs them is built.
"""

from .base import EmotionCritic
from .clip_probe import ClipProbeCritic
from .clip_zero_shot import ClipZeroShotCritic
from .loader import CRITIC_CLASSES, critic_metadata_template, detect_kind, load_critic
from .resnet_predictor import EmoEditorResNetCritic

__all__ = [
    "CRITIC_CLASSES",
    "ClipProbeCritic",
    "ClipZeroShotCritic",
    "EmoEditorResNetCritic",
    "EmotionCritic",
    "critic_metadata_template",
    "detect_kind",
    "load_critic",
]
