"""Token routing for three-branch DPO guidance: the guider declares condition 2 as the
negative visual branch; injections with a negative visual prompt attend to it there,
injections without one treat that branch as the positive one."""

import pytest
import torch
from helpers.attention_reference import DIMS, make_injection, make_prompt, options, qkv, reference

from emotion_core.testing.adapter_assets import adapter_shapes, random_state_dict
from emotion_core.visual_prompt import (GUIDER_ROLES_OPTION, NEGATIVE, NEGATIVE_VISUAL, POSITIVE,
                                        ImagePromptAttention, VisualPromptAdapter)

DECLARED = {2: NEGATIVE_VISUAL}


@pytest.fixture(scope="module")
def adapter():
    return VisualPromptAdapter.from_state_dict(random_state_dict(adapter_shapes("base", 768, DIMS), seed=7,
                                                                 dtype=torch.float32))


def test_declared_role_routes_negative_visual_tokens(adapter):
    injection = make_injection(adapter, make_prompt(extra={NEGATIVE_VISUAL: 8}))
    assert injection.roles_for([2, 1, 0], DECLARED) == [NEGATIVE_VISUAL, NEGATIVE, POSITIVE]
    assert injection.roles_for([2, 1, 0]) == [NEGATIVE, NEGATIVE, POSITIVE], "undeclared: unchanged default"


def test_injection_without_negative_visual_treats_branch_as_positive(adapter):
    injection = make_injection(adapter, make_prompt())
    assert injection.roles_for([0, 2, 1], DECLARED) == [POSITIVE, POSITIVE, NEGATIVE]


def test_injection_table_wins_over_declaration(adapter):
    injection = make_injection(adapter, make_prompt(extra={NEGATIVE_VISUAL: 8}), condition_roles={0: POSITIVE,
                                                                                                  1: NEGATIVE,
                                                                                                  2: NEGATIVE})
    assert injection.roles_for([2], DECLARED) == [NEGATIVE]


@pytest.mark.parametrize("cond_or_uncond", [[0, 1, 2], [2, 1, 0], [1, 2], [2]])
@pytest.mark.parametrize("nv_tokens", [8, 4])
def test_patch_output_matches_reference(adapter, cond_or_uncond, nv_tokens):
    prompt = make_prompt(extra={NEGATIVE_VISUAL: nv_tokens})
    patch = ImagePromptAttention(make_injection(adapter, prompt), layer=1)
    q, k, v = qkv(len(cond_or_uncond))
    roles = [{0: POSITIVE, 1: NEGATIVE, 2: NEGATIVE_VISUAL}[c] for c in cond_or_uncond]
    expected = reference(adapter, prompt, q, k, v, roles, layer=1, weight=0.7)
    got = patch(q, k, v, {**options(cond_or_uncond), GUIDER_ROLES_OPTION: DECLARED})
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
