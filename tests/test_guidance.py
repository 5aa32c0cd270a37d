"""Three-branch guidance: formula against a hand computation, schedules, step progress."""

from __future__ import annotations

import math

import pytest
import torch

from emotion_core.errors import InvalidInputError
from emotion_core.guidance import (SCHEDULES, check_visual_scale, schedule_factor, step_progress,
                                   three_branch_guidance, visual_scale_at)


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


def test_pipeline_guidance_uses_step_progress():
    from emotion_core.guidance import negative_visual_guidance
    from emotion_core.pipeline.guidance import StepInfo

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
    from emotion_core.guidance import pipeline_options, with_negative_visual
    from emotion_core.visual_prompt import GUIDER_ROLES_OPTION, NEGATIVE_VISUAL, VisualPrompt

    a = VisualPrompt({"positive": torch.ones(4, 8), "negative": torch.zeros(4, 8)}, "sd15", "base", 8)
    b = VisualPrompt({"positive": torch.full((8, 8), 2.0), "negative": torch.zeros(8, 8)}, "sd15", "base", 8)
    combined = with_negative_visual(a, b)
    assert torch.equal(combined.tokens[NEGATIVE_VISUAL], b.tokens["positive"])
    assert torch.equal(combined.tokens["positive"], a.tokens["positive"])
    assert pipeline_options() == {GUIDER_ROLES_OPTION: {2: NEGATIVE_VISUAL}}
    with pytest.raises(InvalidInputError, match="another adapter"):
        with_negative_visual(a, VisualPrompt({"positive": torch.ones(4, 16), "negative": torch.ones(4, 16)}, "sd15",
                                             "plus", 16))
