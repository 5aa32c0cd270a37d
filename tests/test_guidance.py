"""Three-branch guidance: formula against a hand computation, one CFG definition, schedules,
one step progress definition shared by the ComfyUI guider and the diffusers pipeline."""

from __future__ import annotations

import math
import os

import pytest
import torch

from emotion_core.errors import InvalidInputError
from emotion_core.guidance import (SCHEDULES, StepInfo, cfg_combine, cfg_guidance, check_visual_scale,
                                   sampling_progress, schedule_factor, step_progress, three_branch_guidance,
                                   visual_scale_at)


def test_formula_matches_hand_reference():
    positive = torch.tensor([1.0, 2.0, -1.0])
    negative_visual = torch.tensor([0.5, 2.5, -1.0])
    uncond = torch.tensor([0.0, 1.0, 1.0])
    # by hand, s = 3, s_v = 2: u + 3(p - u) + 2(p - nv)
    expected = torch.tensor([0.0 + 3 * 1.0 + 2 * 0.5, 1.0 + 3 * 1.0 + 2 * -0.5, 1.0 + 3 * -2.0 + 0.0])
    assert torch.equal(three_branch_guidance(positive, negative_visual, uncond, 3.0, 2.0), expected)


def test_zero_visual_scale_is_cfg_and_affine_in_prediction_space():
    g = torch.Generator().manual_seed(0)
    p, nv, u, x = (torch.randn(2, 4, 3, 3, generator=g) for _ in range(4))
    assert torch.equal(three_branch_guidance(p, nv, u, 7.0, 0.0), u + (p - u) * 7.0)
    assert torch.equal(three_branch_guidance(p, None, u, 7.0, 0.0), u + (p - u) * 7.0)
    # weights sum to one: guiding x0 = x - sigma * eps equals x - sigma * (guided eps)
    sigma = 2.5
    guided_x0 = three_branch_guidance(x - sigma * p, x - sigma * nv, x - sigma * u, 5.0, 1.5)
    torch.testing.assert_close(guided_x0, x - sigma * three_branch_guidance(p, nv, u, 5.0, 1.5))


def _branches(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)


def test_one_cfg_definition():
    cond, uncond = _branches()
    expected = uncond + (cond - uncond) * 7.0
    assert torch.equal(cfg_combine(cond, uncond, 7.0), expected)
    assert torch.equal(cfg_guidance(7.0)([cond, uncond], StepInfo(0, 2, 999.0, 14.6)), expected)
    assert torch.equal(three_branch_guidance(cond, None, uncond, 7.0, 0.0), expected)


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set")
def test_cfg_matches_comfyui_cfg_function_bit_for_bit():
    import comfy.samplers

    cond, uncond = _branches(1)
    x = torch.zeros_like(cond)
    assert torch.equal(cfg_combine(cond, uncond, 6.5),
                       comfy.samplers.cfg_function(None, cond, uncond, 6.5, x, torch.ones(2)))


def test_missing_branches():
    p = torch.ones(3)
    assert torch.equal(three_branch_guidance(p, p * 0, None, 1.0, 2.0), p + 2.0 * p)
    with pytest.raises(InvalidInputError, match="unconditional"):
        three_branch_guidance(p, p, None, 5.0, 0.0)
    with pytest.raises(InvalidInputError, match="negative visual"):
        three_branch_guidance(p, None, p, 5.0, 1.0)


@pytest.mark.parametrize("name,at0,at_half,at1", [
    ("constant", 1.0, 1.0, 1.0), ("linear_decay", 1.0, 0.5, 0.0), ("linear_ramp", 0.0, 0.5, 1.0),
    ("cosine_decay", 1.0, 0.5, 0.0)])
def test_schedules(name, at0, at_half, at1):
    assert [schedule_factor(name, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([at0, at_half, at1])
    assert schedule_factor(name, -1.0) == pytest.approx(at0) and schedule_factor(name, 2.0) == pytest.approx(at1)
    assert visual_scale_at(name, 4.0, 0.5) == pytest.approx(4.0 * at_half)


def test_cosine_is_flat_at_the_ends():
    assert schedule_factor("cosine_decay", 0.1) > schedule_factor("linear_decay", 0.1)
    assert schedule_factor("cosine_decay", 0.25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert set(SCHEDULES) == {"constant", "linear_decay", "linear_ramp", "cosine_decay"}


def test_bad_schedule_and_scale():
    with pytest.raises(InvalidInputError, match="constant"):
        schedule_factor("exponential", 0.5)
    for bad in (-0.1, 31.0, float("nan")):
        with pytest.raises(InvalidInputError, match="visual guidance scale"):
            check_visual_scale(bad)


def test_step_progress():
    sigmas = torch.tensor([14.6, 8.0, 3.0, 1.0, 0.0])  # 4 steps
    assert [step_progress(float(s), sigmas) for s in sigmas[:-1]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert step_progress(5.0, sigmas) == pytest.approx(1 / 3)  # a sub-step of step 1
    assert step_progress(3.0, None) == 0.0
    assert step_progress(3.0, torch.tensor([3.0, 0.0])) == 0.0


def test_sampling_progress():
    assert [sampling_progress(i, 4) for i in range(4)] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert sampling_progress(0, 1) == 0.0
    assert [StepInfo(i, 3, 0.0, 0.0).progress for i in range(3)] == [0.0, 0.5, 1.0]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("scheduler,denoise", [("ddim", 1.0), ("euler", 0.5)])
def test_pipeline_and_comfyui_progress_agree(tiny_sd_pipeline, scheduler, denoise):
    """The pipeline's progress from its step index equals the progress a ComfyUI guider derives
    from the same run's sigmas (n + 1 of them, ending at 0; with denoise < 1 the truncated run)."""
    from emotion_core.pipeline import encode_prompts, load_pipeline, sample, use_scheduler

    pipe = load_pipeline(tiny_sd_pipeline["pipeline"])
    use_scheduler(pipe, scheduler)  # one model evaluation per step, as ComfyUI's samplers' steps
    steps: list[StepInfo] = []
    init = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0)) if denoise < 1 else None
    sample(pipe, encode_prompts(pipe, ["a calm lake", ""]), cfg_guidance(5.0), seed=0, steps=8, width=64, height=64,
           init_image=init, denoise=denoise, progress=False, callback=lambda step, latents: steps.append(step))
    assert len(steps) == int(8 * denoise)
    sigmas = [step.sigma for step in steps] + [0.0]
    assert [step_progress(step.sigma, sigmas) for step in steps] == [step.progress for step in steps]
    assert steps[0].progress == 0.0 and steps[-1].progress == 1.0
    between = (steps[1].sigma + steps[2].sigma) / 2  # a multi-stage sampler's sub-step counts as its step
    assert step_progress(between, sigmas) == steps[1].progress


def test_pipeline_guidance_uses_step_progress():
    from emotion_core.guidance import negative_visual_guidance

    p, u, nv = torch.ones(1, 4), torch.zeros(1, 4), torch.full((1, 4), 0.5)
    guide = negative_visual_guidance(3.0, 2.0, "linear_decay")
    first = guide([p, u, nv], StepInfo(0, 3, 999.0, 14.6))
    last = guide([p, u, nv], StepInfo(2, 3, 1.0, 0.03))
    assert torch.equal(first, three_branch_guidance(p, nv, u, 3.0, 2.0))
    assert torch.equal(last, three_branch_guidance(p, nv, u, 3.0, 0.0))
    with pytest.raises(InvalidInputError, match="3 branches"):
        guide([p, u], StepInfo(0, 3, 999.0, 14.6))
    with pytest.raises(InvalidInputError):
        negative_visual_guidance(3.0, 2.0, "sideways")


def test_with_negative_visual_adds_the_role():
    from emotion_core.guidance import negative_visual_roles, with_negative_visual
    from emotion_core.visual_prompt import GUIDER_ROLES_OPTION, NEGATIVE_VISUAL, VisualPrompt

    a = VisualPrompt({"positive": torch.ones(4, 8), "negative": torch.zeros(4, 8)}, "sd15", "base", 8)
    b = VisualPrompt({"positive": torch.full((8, 8), 2.0), "negative": torch.zeros(8, 8)}, "sd15", "base", 8)
    combined = with_negative_visual(a, b)
    assert torch.equal(combined.tokens[NEGATIVE_VISUAL], b.tokens["positive"])
    assert torch.equal(combined.tokens["positive"], a.tokens["positive"])
    assert negative_visual_roles() == {GUIDER_ROLES_OPTION: {2: NEGATIVE_VISUAL}}
    with pytest.raises(InvalidInputError, match="another adapter"):
        with_negative_visual(a, VisualPrompt({"positive": torch.ones(4, 16), "negative": torch.ones(4, 16)}, "sd15",
                                             "plus", 16))
