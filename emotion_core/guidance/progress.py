"""Sampling progress, defined once so a schedule means the same in ComfyUI and in the
diffusers pipeline: p = step index / (steps − 1), 0 at the first step and 1 at the last,
over the steps a run executes (with denoise < 1, the truncated schedule).

The diffusers pipeline knows its step index (``StepInfo.progress``); a ComfyUI guider
only sees a sigma and the run's sigma list, so it derives the step index from them
(``step_progress``).
"""

from __future__ import annotations

from typing import Sequence

import torch


def sampling_progress(index: int, steps: int) -> float:
    """Progress of 0-based step ``index`` of ``steps``; a one-step run is at 0."""
    return index / (steps - 1) if steps > 1 else 0.0


def sigma_step_index(sigma: float, sample_sigmas: Sequence[float] | torch.Tensor) -> int:
    """The step whose interval holds ``sigma``: step i of n evaluates sigmas in (σ_{i+1}, σ_i],
    so sub-step evaluations of multi-stage samplers count as their step."""
    starts = [float(s) for s in sample_sigmas[:-1]]
    return max((i for i, start in enumerate(starts) if sigma <= start * (1 + 1e-5)), default=0)


def step_progress(sigma: float, sample_sigmas: Sequence[float] | torch.Tensor | None) -> float:
    """``sampling_progress`` of the step ``sigma`` belongs to, with ``sample_sigmas`` the run's
    n + 1 sigmas (ComfyUI's ``transformer_options["sample_sigmas"]``). Without the list (a
    guider called outside a sampler) progress is 0."""
    if sample_sigmas is None:
        return 0.0
    return sampling_progress(sigma_step_index(sigma, sample_sigmas), len(sample_sigmas) - 1)
