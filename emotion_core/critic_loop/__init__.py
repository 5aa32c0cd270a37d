"""Iterative Emotion Inference: generate or edit, judge with an emotion critic and
SSIM, repeat within a hard cap, keep the best (see ``iterative_inference``)."""

from .judge import Judgement, judge, pick_best, pick_emoeditor
from .iterative_inference import Candidates, LoopResult, PassState, draw_denoise, run_critic_loop
from .presets import (
    CUSTOM,
    EMOEDITOR,
    EMOEDITOR_NUM_LOOP,
    EMOEDITOR_PASS_CAP,
    EMOEDITOR_PRESET,
    PRESETS,
    Preset,
    SamplerSettings,
    emoeditor_settings,
)
from .settings import DEFAULT_RULE, DIRECTION_SOURCES, PICKS, RULES, LoopSettings, pass_steps

__all__ = [
    "CUSTOM", "Candidates", "DEFAULT_RULE", "DIRECTION_SOURCES", "EMOEDITOR", "EMOEDITOR_NUM_LOOP",
    "EMOEDITOR_PASS_CAP", "EMOEDITOR_PRESET", "Judgement", "LoopResult", "LoopSettings", "PICKS", "PRESETS",
    "PassState", "Preset", "RULES", "SamplerSettings", "draw_denoise", "emoeditor_settings", "judge", "pass_steps",
    "pick_best", "pick_emoeditor", "run_critic_loop",
]
