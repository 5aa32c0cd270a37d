"""How the UNet outputs of the branches become one prediction per step.

A guidance is any callable ``guidance(outputs, step) -> output``: ``outputs`` holds
one ``[B, C, h, w]`` model output per branch, in the order the branches were
given to ``sample`` (ε, or v for v-prediction models: the combinations are
linear, so both work), ``step`` is the ``StepInfo`` of the step, so schedules
over steps (e.g. a visual guidance scale that fades) need no state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import InvalidInputError


@dataclass(frozen=True)
class StepInfo:
    index: int  # 0-based step of this run
    total: int  # model evaluations this run makes (fewer than ``steps`` with denoise < 1)
    timestep: float  # the scheduler's timestep (0..999)
    sigma: float  # noise level sqrt((1 - alpha_bar) / alpha_bar): ComfyUI's sigma for the same step

    @property
    def progress(self) -> float:
        """0 at the first step, approaching 1 at the last."""
        return self.index / self.total


Guidance = Callable[[Sequence[torch.Tensor], StepInfo], torch.Tensor]


def cfg_guidance(scale: float) -> Guidance:
    """Classifier-free guidance over two branches ``[cond, uncond]``:
    ``uncond + scale * (cond - uncond)``. Branch 0 is the positive prompt, branch 1 the
    negative/unconditional one, matching ComfyUI's ``cond_or_uncond`` indices (0 cond, 1 uncond)."""
    if not math.isfinite(scale):
        raise InvalidInputError(f"guidance scale must be a finite number, got {scale}")

    def guidance(outputs: Sequence[torch.Tensor], step: StepInfo) -> torch.Tensor:
        if len(outputs) != 2:
            raise InvalidInputError(f"classifier-free guidance combines 2 branches (cond, uncond), got {len(outputs)}")
        cond, uncond = outputs
        return uncond + scale * (cond - uncond)

    return guidance
