"""Guidance: how the branches of a sampling step combine, in one place for the ComfyUI
guider, the diffusers pipeline and the benchmarks (as diffusers keeps its guiders together).

- ``formula``: classifier-free guidance, three-branch negative-visual guidance and
  InstructPix2Pix's image guidance;
- ``schedules``: how the visual guidance scale changes over sampling progress;
- ``progress``: the one definition of sampling progress (step index / (steps − 1));
- ``guiders``: the pipeline's guidance callables and ``StepInfo``;
- ``roles``: the negative visual branch's condition index and visual prompt tokens.
"""

from .formula import cfg_combine, image_guidance_combine, three_branch_guidance
from .guiders import Guidance, StepInfo, cfg_guidance, negative_visual_guidance
from .progress import sampling_progress, sigma_step_index, step_progress
from .roles import NEGATIVE_VISUAL_INDEX, negative_visual_roles, with_negative_visual
from .schedules import SCHEDULES, VISUAL_SCALE_RANGE, check_visual_scale, schedule_factor, visual_scale_at

__all__ = [
    "Guidance", "NEGATIVE_VISUAL_INDEX", "SCHEDULES", "StepInfo", "VISUAL_SCALE_RANGE", "cfg_combine", "cfg_guidance",
    "check_visual_scale", "image_guidance_combine", "negative_visual_guidance", "negative_visual_roles", "sampling_progress", "schedule_factor",
    "sigma_step_index", "step_progress", "three_branch_guidance", "visual_scale_at", "with_negative_visual",
]
