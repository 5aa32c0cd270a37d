"""Named settings. ``EmoEditor``: the procedure of EmoEditor's released test.py, with
two of its loop bugs fixed (a hard cap on all passes; the direction re-estimated
from the image being edited, where test.py keeps the first edit's estimate)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .settings import LoopSettings

CUSTOM = "custom"
EMOEDITOR = "EmoEditor"


@dataclass(frozen=True)
class SamplerSettings:
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    spread_steps: bool  # see settings.pass_steps


@dataclass(frozen=True)
class Preset:
    loop: LoopSettings
    sampler: SamplerSettings
    needs_emotion_encoder: bool

    def settings(self, seed: int, max_iterations: int | None = None) -> LoopSettings:
        """The preset's loop settings with the run's seed and, optionally, a lower hard cap."""
        cap = self.loop.max_iterations if max_iterations is None else max_iterations
        return replace(self.loop, seed=seed, max_iterations=cap)


# test.py: SSIM window (0.5, 0.8) OR top-1 == target; stop at target probability 0.6; at most
# 30 images; noise level drawn from 700..980 of 1000 train steps; 30 DDIM steps over it; the
# emotion encoder's tokens as the only text conditioning; no classifier-free guidance.
EMOEDITOR_PRESET = Preset(
    loop=LoopSettings(ssim_low=0.5, ssim_high=0.8, confidence=0.6, rule="or", max_iterations=30, candidates=1,
                      denoise_low=0.70, denoise_high=0.98, chain=True),
    sampler=SamplerSettings(steps=30, cfg=1.0, sampler_name="ddim", scheduler="ddim_uniform", spread_steps=True),
    needs_emotion_encoder=True,
)

PRESETS: dict[str, Preset | None] = {CUSTOM: None, EMOEDITOR: EMOEDITOR_PRESET}


def emoeditor_settings(seed: int, max_iterations: int = 30) -> LoopSettings:
    """The EmoEditor loop settings with a seed and (optionally lower) hard cap."""
    return EMOEDITOR_PRESET.settings(seed, max_iterations)
