"""Three-branch guidance with a negative visual prompt (Emotion-Director's MC-Diffusion
inference counterpart of negative-visual DPO).

    ε = ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv)

- ε_p: text + the visual prompt of the target emotion (positive branch),
- ε_nv: the same text + the visual prompt of another emotion (negative visual branch),
- ε_u: the unconditional / negative-text branch,
- s: the usual CFG scale, s_v: the visual guidance scale.

The text term pushes towards the prompt; the visual term pushes away from what the
other emotion's visual prompt would add under the *same* text, so it moves along
the emotion difference only, not along semantics. The coefficients sum to one, so
the formula is the same for noise (ε) and for denoised (x0) predictions, which is
what ComfyUI's guiders combine. With s_v = 0 it is exactly classifier-free guidance.

Schedules say how s_v changes over sampling progress p = step / (steps − 1), in [0, 1]:

- ``constant``: s_v at every step;
- ``linear_decay``: s_v·(1 − p), strongest while the composition and palette form,
  off at the end so the last steps only refine detail;
- ``linear_ramp``: s_v·p, leaves the layout to the text and pushes the mood late;
- ``cosine_decay``: s_v·½(1 + cos πp), like linear_decay but flat at both ends
  (full strength for longer early, a gentle fade-out).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .errors import InvalidInputError

SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "linear_decay": lambda p: 1.0 - p,
    "linear_ramp": lambda p: p,
    "cosine_decay": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}
VISUAL_SCALE_RANGE = (0.0, 30.0)


def three_branch_guidance(positive: torch.Tensor, negative_visual: torch.Tensor | None, uncond: torch.Tensor | None,
                          cfg: float, visual_scale: float) -> torch.Tensor:
    """ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv). A missing branch means its term is off:
    ``uncond=None`` is only allowed with s = 1, ``negative_visual=None`` only with s_v = 0
    (the callers skip evaluating a branch whose weight is zero)."""
    if uncond is None:
        if not math.isclose(cfg, 1.0):
            raise InvalidInputError(f"the unconditional branch is needed for cfg {cfg} (only cfg 1 can skip it)")
        out = positive
    else:
        out = uncond + (positive - uncond) * cfg
    if visual_scale != 0.0:
        if negative_visual is None:
            raise InvalidInputError(f"visual guidance {visual_scale} needs the negative visual branch")
        out = out + (positive - negative_visual) * visual_scale
    return out


def schedule_factor(schedule: str, progress: float) -> float:
    """Multiplier of s_v at sampling progress ``progress`` in [0, 1]."""
    try:
        shape = SCHEDULES[schedule]
    except KeyError:
        raise InvalidInputError(f"unknown visual guidance schedule {schedule!r}; choose one of {list(SCHEDULES)}") from None
    return shape(min(max(progress, 0.0), 1.0))


def visual_scale_at(schedule: str, visual_scale: float, progress: float) -> float:
    return visual_scale * schedule_factor(schedule, progress)


def step_progress(sigma: float, sample_sigmas: Sequence[float] | torch.Tensor | None) -> float:
    """Progress of the step whose interval holds ``sigma``: step i of n evaluates sigmas in
    (σ_{i+1}, σ_i], so sub-step evaluations of multi-stage samplers count as their step.
    Without the step list (a guider called outside a sampler) progress is 0."""
    if sample_sigmas is None:
        return 0.0
    sigmas = [float(s) for s in sample_sigmas]
    steps = len(sigmas) - 1
    if steps <= 1:
        return 0.0
    index = 0
    for i in range(steps):
        if sigma <= sigmas[i] * (1 + 1e-5):
            index = i
    return index / (steps - 1)


def check_visual_scale(visual_scale: float) -> None:
    low, high = VISUAL_SCALE_RANGE
    if not (low <= visual_scale <= high) or math.isnan(visual_scale):
        raise InvalidInputError(f"visual guidance scale must be between {low} and {high}, got {visual_scale}")


def negative_visual_guidance(cfg: float, visual_scale: float, schedule: str = "constant"):
    """The formula as a diffusers-pipeline guidance (``pipeline.sample``) over branches
    ``[positive, uncond, negative visual]``; progress is step / (steps − 1), as in the sampler node."""
    check_visual_scale(visual_scale)
    schedule_factor(schedule, 0.0)  # an unknown schedule fails now, not at the first step

    def guidance(outputs, step) -> torch.Tensor:
        if len(outputs) != 3:
            raise InvalidInputError(f"negative visual guidance combines 3 branches, got {len(outputs)}")
        positive, uncond, negative_visual = outputs
        progress = step.index / max(step.total - 1, 1)
        return three_branch_guidance(positive, negative_visual, uncond, cfg,
                                     visual_scale_at(schedule, visual_scale, progress))

    return guidance


# The negative visual branch's condition index (0 positive, 1 uncond, as in ComfyUI).
NEGATIVE_VISUAL_INDEX = 2


def pipeline_options() -> dict:
    """Per-call options for visual prompt patches: condition 2 is the negative visual branch."""
    from .visual_prompt import GUIDER_ROLES_OPTION, NEGATIVE_VISUAL

    return {GUIDER_ROLES_OPTION: {NEGATIVE_VISUAL_INDEX: NEGATIVE_VISUAL}}


def with_negative_visual(prompt, negative):
    """``prompt`` (a VisualPrompt) with ``negative``'s positive tokens as its negative visual role."""
    from .visual_prompt import NEGATIVE_VISUAL, POSITIVE, VisualPrompt

    if (prompt.family, prompt.variant, prompt.cross_dim) != (negative.family, negative.variant, negative.cross_dim):
        raise InvalidInputError("the negative visual prompt was made for another adapter than the visual prompt")
    tokens = {**prompt.tokens, NEGATIVE_VISUAL: negative.tokens[POSITIVE]}
    return VisualPrompt(tokens, prompt.family, prompt.variant, prompt.cross_dim, f"{prompt.source}|neg:{negative.source}")
