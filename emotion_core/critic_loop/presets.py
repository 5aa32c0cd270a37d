"""Named settings. ``EmoEditor``: the loop of EmoEditor's released test.py, decision for
decision, with one addition: a hard cap on all passes (``EMOEDITOR_PASS_CAP``). test.py
stops only at a confident image or once ``num_loop`` (30) images are kept, and counts
only accepted passes, so a run whose passes are never accepted never ends; the cap is
ten passes per image it can keep, generous enough not to end a run that test.py would
finish. Re-estimating the direction every pass (test.py keeps the first edit's) is an
option: ``direction_from="edited"``."""

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
    source_size: int | None = None  # the side the source is resized to (square) before editing; None: as it is

    def settings(self, seed: int, max_iterations: int | None = None, **changes) -> LoopSettings:
        """The preset's loop settings with the run's seed, optionally another hard cap on
        passes, and any other ``LoopSettings`` field changed."""
        cap = self.loop.max_iterations if max_iterations is None else max_iterations
        return replace(self.loop, seed=seed, max_iterations=cap, **changes)


EMOEDITOR_NUM_LOOP = 30  # test.py's --num_loop: images kept, the source included
EMOEDITOR_PASS_CAP = 10 * EMOEDITOR_NUM_LOOP

# test.py: SSIM window (0.5, 0.8) OR top-1 == target; stop at target probability 0.6 or once 30
# images are kept; a rejected pass re-edits the last kept image; the first pass's direction from
# the source, every later one from the first pass's result; its final pick (the source if nothing
# was accepted); noise level drawn from 700..980 of 1000 train steps; 30 DDIM steps over it; the
# emotion encoder's tokens as the only text conditioning; no classifier-free guidance.
EMOEDITOR_PRESET = Preset(
    loop=LoopSettings(ssim_low=0.5, ssim_high=0.8, confidence=0.6, rule="or", max_iterations=EMOEDITOR_PASS_CAP,
                      candidates=1, denoise_low=0.70, denoise_high=0.98, chain=True, ssim_open=True,
                      keep_limit=EMOEDITOR_NUM_LOOP, direction_from="first_edit", pick="emoeditor"),
    sampler=SamplerSettings(steps=30, cfg=1.0, sampler_name="ddim", scheduler="ddim_uniform", spread_steps=True),
    needs_emotion_encoder=True,
    source_size=224,  # test.py: Resize((224, 224)) of the source (PIL bilinear); every edit is 224x224
)

PRESETS: dict[str, Preset | None] = {CUSTOM: None, EMOEDITOR: EMOEDITOR_PRESET}


def emoeditor_settings(seed: int, max_iterations: int | None = None, **changes) -> LoopSettings:
    """The EmoEditor loop settings with a seed, optionally another hard cap on passes and other changes."""
    return EMOEDITOR_PRESET.settings(seed, max_iterations, **changes)
