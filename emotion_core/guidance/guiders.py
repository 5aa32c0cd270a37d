"""Guidance callables for the diffusers pipeline (``pipeline.sample``): how the UNet outputs
of the branches become one prediction per step.

A guidance is any callable ``guidance(outputs, step) -> output``: ``outputs`` holds
one ``[B, C, h, w]`` model output per branch, in the order the branches were
given to ``sample`` (ε, or v for v-prediction models: the combinations are
linear, so both work), ``step`` is the ``StepInfo`` of the step, so schedules
over steps (e.g. a visual guidance scale that fades) need no state. ComfyUI's
counterpart is the Negative Visual DPO guider node, over the same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import InvalidInputError
from .formula import cfg_combine, three_branch_guidance
from .progress import sampling_progress
from .schedules import check_visual_scale, schedule_factor, visual_scale_at


@dataclass(frozen=True)
class StepInfo:
    index: int  # 0-based step of this run
    total: int  # model evaluations this run makes (fewer than ``steps`` with denoise < 1)
    timestep: float  # the scheduler's timestep (0..999)
    sigma: float  # noise level sqrt((1 - alpha_bar) / alpha_bar): ComfyUI's sigma for the same step

    @property
    def progress(self) -> float:
        """0 at the first step, 1 at the last (``progress.sampling_progress``)."""
        return sampling_progress(self.index, self.total)


Guidance = Callable[[Sequence[torch.Tensor], StepInfo], torch.Tensor]


def cfg_guidance(scale: float) -> Guidance:
    """Classifier-free guidance over two branches ``[cond, uncond]``. Branch 0 is the positive
    prompt, branch 1 the negative/unconditional one, matching ComfyUI's ``cond_or_uncond``
    indices (0 cond, 1 uncond)."""
    if not math.isfinite(scale):
        raise InvalidInputError(f"guidance scale must be a finite number, got {scale}")

    def guidance(outputs: Sequence[torch.Tensor], step: StepInfo) -> torch.Tensor:
        if len(outputs) != 2:
            raise InvalidInputError(f"classifier-free guidance combines 2 branches (cond, uncond), got {len(outputs)}")
        cond, uncond = outputs
        return cfg_combine(cond, uncond, scale)

    return guidance


def negative_visual_guidance(cfg: float, visual_scale: float, schedule: str = "constant") -> Guidance:
    """Three-branch guidance over branches ``[positive, uncond, negative visual]``, s_v following
    ``schedule`` over ``step.progress``."""
    check_visual_scale(visual_scale)
    schedule_factor(schedule, 0.0)  # an unknown schedule fails now, not at the first step

    def guidance(outputs: Sequence[torch.Tensor], step: StepInfo) -> torch.Tensor:
        if len(outputs) != 3:
            raise InvalidInputError(f"negative visual guidance combines 3 branches, got {len(outputs)}")
        positive, uncond, negative_visual = outputs
        return three_branch_guidance(positive, negative_visual, uncond, cfg,
                                     visual_scale_at(schedule, visual_scale, step.progress))

    return guidance
