"""Decoupled cross-attention patches: the maths against an independent reference,
per-chunk token selection, sigma gating, stacking, host hooks (.to/.models/deepcopy),
weight schedules, site checks and the diffusers processor."""

import copy

import pytest
import torch
from helpers.attention_reference import (
    DIMS,
    HEADS,
    LATENT_BATCH,
    make_injection,
    make_prompt,
    options,
    qkv,
    ref_attention,
    reference,
)

from emotion_core.errors import InvalidInputError
from emotion_core.testing.adapter_assets import adapter_shapes, random_state_dict
from emotion_core.visual_prompt import (
    NEGATIVE,
    POSITIVE,
    AttnSite,
    ImagePromptAttention,
    VisualPromptAdapter,
    check_sites,
    layer_weights,
    make_patches,
    sdpa_attention,
)


@pytest.fixture(scope="module")
def adapter():
    shapes = adapter_shapes("base", 768, DIMS)
    return VisualPromptAdapter.from_state_dict(random_state_dict(shapes, seed=5, dtype=torch.float32))


ORDERS = [[0], [1], [0, 1], [1, 0], [0, 0, 1], [1, 0, 1, 0], [2, 0, 1], [0, 2]]


@pytest.mark.parametrize("cond_or_uncond", ORDERS)
@pytest.mark.parametrize("negative_tokens", [8, 4])  # equal counts (one call) and unequal (per chunk)
def test_decoupled_attention_matches_reference(adapter, cond_or_uncond, negative_tokens):
    prompt = make_prompt(negative=negative_tokens)
    patch = ImagePromptAttention(make_injection(adapter, prompt), layer=1)
    q, k, v = qkv(len(cond_or_uncond))
    roles = [POSITIVE if c == 0 else NEGATIVE for c in cond_or_uncond]  # unlisted 2 -> negative
    expected = reference(adapter, prompt, q, k, v, roles, layer=1, weight=0.7)
    torch.testing.assert_close(patch(q, k, v, options(cond_or_uncond)), expected, atol=1e-5, rtol=1e-4)


def test_split_batches_equal_the_joint_batch(adapter):
    patch = ImagePromptAttention(make_injection(adapter, make_prompt()), layer=0)
    q, k, v = qkv(2, layer=0)
    joint = patch(q, k, v, options([1, 0]))
    first = patch(q[:LATENT_BATCH], k[:LATENT_BATCH], v[:LATENT_BATCH], options([1]))
    second = patch(q[LATENT_BATCH:], k[LATENT_BATCH:], v[LATENT_BATCH:], options([0]))
    torch.testing.assert_close(torch.cat([first, second]), joint, atol=1e-6, rtol=1e-5)


def test_a_third_condition_can_be_registered(adapter):
    prompt = make_prompt(extra={"contrast": 8})
    table = {0: POSITIVE, 1: "contrast", 2: NEGATIVE}
    patch = ImagePromptAttention(make_injection(adapter, prompt, condition_roles=table), layer=2)
    q, k, v = qkv(3, layer=2)
    expected = reference(adapter, prompt, q, k, v, [NEGATIVE, "contrast", POSITIVE], layer=2, weight=1.3)
    torch.testing.assert_close(patch(q, k, v, options([2, 1, 0])), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(InvalidInputError, match="contrast"):
        make_injection(adapter, make_prompt(), condition_roles=table)


def test_weight_zero_is_exactly_the_text_attention(adapter):
    patch = ImagePromptAttention(make_injection(adapter, make_prompt(), weights=(0.0, 0.0, 0.0)), layer=1)
    q, k, v = qkv(2)
    assert torch.equal(patch(q, k, v, options([0, 1])), sdpa_attention(q, k, v, HEADS))


@pytest.mark.parametrize("sigma,active", [(11.0, False), (10.0, True), (5.0, True), (2.0, True), (1.0, False),
                                          (None, True)])
def test_sigma_gate(adapter, sigma, active):
    injection = make_injection(adapter, make_prompt(), sigma_range=(10.0, 2.0))
    patch = ImagePromptAttention(injection, layer=1)
    q, k, v = qkv(2)
    out = patch(q, k, v, options([0, 1], sigma))
    text = sdpa_attention(q, k, v, HEADS)
    assert torch.equal(out, text) is not active


def test_gate_is_evaluated_once_per_sigmas_tensor(adapter):
    injection = make_injection(adapter, make_prompt(), sigma_range=(10.0, 2.0))
    sigmas = torch.tensor([5.0, 5.0])
    assert injection.active({"sigmas": sigmas})
    sigmas.fill_(50.0)  # same object: cached answer (one host sync per step, not per layer)
    assert injection.active({"sigmas": sigmas})
    assert not injection.active({"sigmas": torch.tensor([50.0, 50.0])})


def test_two_injectors_stack(adapter):
    first_prompt, second_prompt = make_prompt(seed=1), make_prompt(seed=2)
    first = ImagePromptAttention(make_injection(adapter, first_prompt), layer=1)
    second = ImagePromptAttention(make_injection(adapter, second_prompt, weights=(0.5, 0.5, 0.5)), layer=1,
                                  previous=first)
    q, k, v = qkv(2)
    roles = [POSITIVE, NEGATIVE]
    one = reference(adapter, first_prompt, q, k, v, roles, layer=1, weight=0.7)
    two = reference(adapter, second_prompt, q, k, v, roles, layer=1, weight=0.5)
    text = torch.stack([ref_attention(q[i], k[i], v[i], HEADS) for i in range(q.shape[0])])
    torch.testing.assert_close(second(q, k, v, options([0, 1])), one + two - text, atol=1e-5, rtol=1e-4)


def test_make_patches_wraps_existing_patches_by_exact_then_block_key(adapter):
    sites = [AttnSite("input", 1, 0, 32, 768), AttnSite("middle", 0, 0, 64, 768), AttnSite("output", 3, 1, 32, 768)]
    exact, block_wide = object(), object()
    existing = {("input", 1, 0): exact, ("output", 3): block_wide}
    patches = make_patches(make_injection(adapter, make_prompt()), sites, existing)
    assert [p.previous for _, p in patches] == [exact, None, block_wide]
    assert [p.layer for _, p in patches] == [0, 1, 2]


class _Previous:
    def __init__(self):
        self.moved = []

    def __call__(self, q, k, v, extra_options):
        return sdpa_attention(q, k, v, extra_options["n_heads"])

    def to(self, target):
        self.moved.append(target)
        return self

    def models(self):
        return ["previous-model"]


def test_host_hooks_to_models_and_deepcopy(adapter):
    injection = make_injection(adapter, make_prompt(), managed_models=["kv-model"])
    previous = _Previous()
    patch = ImagePromptAttention(injection, layer=0, previous=previous)
    assert patch.models() == ["kv-model", "previous-model"]
    assert patch.to(torch.float16) is patch and previous.moved == [torch.float16]
    assert injection.projected.get(POSITIVE, 0)[0].dtype == torch.float16
    patch.to(torch.float8_e4m3fn)  # storage dtypes are not compute dtypes: ignored
    assert injection.projected.get(POSITIVE, 0)[0].dtype == torch.float16
    patch.to(torch.device("cpu"))
    q, k, v = qkv(1, layer=0)
    assert patch(q, k, v, options([0])).dtype == torch.float32  # keys/values follow the query dtype
    model_options = {"transformer_options": {"patches_replace": {"attn2": {("input", 1, 0): patch}}}}
    copied = copy.deepcopy(model_options)
    assert copied["transformer_options"]["patches_replace"]["attn2"][("input", 1, 0)] is patch


def test_layer_weights_schedules():
    sites = [AttnSite("input", 1, 0, 32, 768), AttnSite("output", 3, 0, 32, 768), AttnSite("middle", 0, 0, 64, 768),
             AttnSite("input", 2, 0, 32, 768)]
    assert layer_weights("uniform", sites, 0.8) == [0.8] * 4
    # a non-standard UNet: SDXL's rule read from its levels (runs of equal width)
    assert layer_weights("Style", sites, 1.0) == [0.0, 1.0, 0.0, 0.0]  # the only up container
    assert layer_weights("composition", sites, 2.0) == [0.0, 0.0, 0.0, 2.0]  # last down level (input 1, 2), second
    assert layer_weights("0, 0.5, 1", sites, 1.0) == [0.0, 1.0, 0.5, 0.0]
    assert layer_weights("1,0,2,0.5", sites, 0.5) == [0.5, 0.0, 1.0, 0.25]
    with pytest.raises(InvalidInputError, match="3 .down,middle,up. or one per cross-attention layer .4"):
        layer_weights("1,1", sites, 1.0)
    with pytest.raises(InvalidInputError, match="not a preset"):
        layer_weights("dramatic", sites, 1.0)
    with pytest.raises(InvalidInputError, match="weight must be between 0.0 and 2.0"):
        layer_weights("uniform", sites, 2.5)
    with pytest.raises(InvalidInputError, match="schedule value"):
        layer_weights("1,nan,1", sites, 1.0)


def _sites(dims, context):
    return [AttnSite("input", i, 0, d, context) for i, d in enumerate(dims)]


def test_check_sites_explains_mismatches(adapter):
    check_sites(adapter, _sites(DIMS, 768))
    with pytest.raises(InvalidInputError, match=r"adapter is for SD15 \(768-wide text context\) but the model is SDXL"):
        check_sites(adapter, _sites(DIMS, 2048))
    with pytest.raises(InvalidInputError, match="3 cross-attention layers but the model has 2"):
        check_sites(adapter, _sites(DIMS[:2], 768))
    with pytest.raises(InvalidInputError, match="layer 3 is 64 wide but the model's block"):
        check_sites(adapter, _sites((32, 32, 32), 768))
    with pytest.raises(InvalidInputError, match="no cross-attention blocks"):
        check_sites(adapter, [])


def test_sdxl_adapter_on_sd15_sites_is_refused():
    shapes = adapter_shapes("base", 2048, (64, 64))
    sdxl = VisualPromptAdapter.from_state_dict(random_state_dict(shapes, dtype=torch.float32))
    with pytest.raises(InvalidInputError, match=r"adapter is for SDXL \(2048-wide text context\) but the model is SD1.5"):
        check_sites(sdxl, _sites((64, 64), 768))


@pytest.fixture(scope="module")
def diffusers_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=768, layers_per_block=1,
        attention_head_dim=8, norm_num_groups=8, sample_size=8,
    ).eval()


def test_diffusers_processors_share_the_patch(diffusers_unet):
    from emotion_core.visual_prompt.diffusers_unet import diffusers_attn2_sites, patched

    sites = diffusers_attn2_sites(diffusers_unet)
    assert [(s.block, s.number, s.index, s.inner_dim) for s in sites] == \
        [("input", 0, 0, 32), ("output", 0, 0, 32), ("output", 1, 0, 32), ("middle", 0, 0, 64)]
    shapes = adapter_shapes("base", 768, [s.inner_dim for s in sites])
    adapter = VisualPromptAdapter.from_state_dict(random_state_dict(shapes, seed=2, dtype=torch.float32))
    check_sites(adapter, sites)
    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 7, 768, generator=g)
    processors = dict(diffusers_unet.attn_processors)
    with torch.no_grad():
        plain = diffusers_unet(latents, 10, text).sample
        for weight, equal in ((0.0, True), (1.0, False)):
            injection = make_injection(adapter, make_prompt(), weights=layer_weights("uniform", sites, weight))
            with patched(diffusers_unet, [p for _, p in make_patches(injection, sites, {})]) as run_options:
                run_options["cond_or_uncond"] = [1, 0]
                out = diffusers_unet(latents, 10, text).sample
            assert torch.equal(out, plain) is equal
    assert diffusers_unet.attn_processors == processors, "processors are restored"
