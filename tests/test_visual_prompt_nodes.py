"""Visual prompt nodes on a UNet: every attn2 block patched (SD1.5: 16, SDXL: 70),
weight 0 is exact, injectors stack, start/end gating, shared weights and the
memory manager hooks, and the nodes' input errors.

With COMFYUI_PATH the UNets are ComfyUI's own ``UNetModel`` (full SD1.5/SDXL
configs on the meta device for counting, a tiny one for forward passes) inside
real ``ModelPatcher``s. Without it, the stand-ins (tests/comfy_standins: tiny_models
and comfy/model_patcher.py) follow ComfyUI's block numbering and attn2 replace
protocol (comfy/ldm/modules/attention.py). The models are built in
tests/helpers/visual_prompt_models.py.
"""

import os

import pytest
import torch
from comfy_standins.tiny_models import FakeClipVision
from helpers.visual_prompt_models import (
    IMAGE,
    SD15,
    SDXL,
    TINY_LAYER_DIMS,
    adapter_for,
    inject,
    meta_patcher,
    run_model,
    run_sdxl,
    sdxl_narrow_patcher,
    tiny_inputs,
)

from emotion_core.testing.adapter_assets import random_state_dict, real_adapter_shapes
from emotion_core.visual_prompt import (
    ProjectedPrompt,
    VisualPromptAdapter,
    VisualPromptInjection,
    comfy_unet_attn2_sites,
    layer_weights,
    make_patches,
)

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))


@pytest.fixture(scope="module")
def nodes(visual_prompt_nodes):
    return visual_prompt_nodes


@pytest.fixture(scope="module")
def tiny_adapter(nodes):
    return adapter_for(TINY_LAYER_DIMS, seed=1)


def node_error():
    """The error class as the pack (imported as a ComfyUI package) raises it."""
    from emotion_core.errors import InvalidInputError

    return InvalidInputError


def attn2_patches(patcher):
    return patcher.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})


# --- tests --------------------------------------------------------------------------------------------

def test_schemas_have_descriptions_and_tooltips(nodes):
    assert set(nodes) == {"VisualPromptAdapterLoader", "VisualPromptInjector"}
    for node_id, display in (("VisualPromptAdapterLoader", "Load Visual Prompt Adapter"),
                             ("VisualPromptInjector", "Visual Prompt Injector")):
        schema = nodes[node_id].define_schema()
        assert schema.display_name == display and schema.description
        assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
        # ComfyUI's V3 registration refuses a node whose input and output ids collide
        assert not {i.id for i in schema.inputs} & {o.id for o in schema.outputs}


def test_loader_lists_and_loads_the_test_adapters(nodes):
    combo = nodes["VisualPromptAdapterLoader"].define_schema().inputs[0]
    assert {"test_ip_adapter_sd15.safetensors", "test_ip_adapter_plus_sd15.safetensors"} <= set(combo.options)
    (adapter,) = nodes["VisualPromptAdapterLoader"].execute(adapter_name="test_ip_adapter_plus_sd15.safetensors").args
    assert (adapter.layout.variant, adapter.layout.layer_dims) == ("plus", (320, 640, 640, 640, 320, 320, 640))
    (again,) = nodes["VisualPromptAdapterLoader"].execute(adapter_name="test_ip_adapter_plus_sd15.safetensors").args
    assert again is adapter  # cached while the file is unchanged


def test_every_sd15_attn2_block_is_patched(nodes):
    model = meta_patcher(SD15)
    adapter = VisualPromptAdapter.from_state_dict(random_state_dict(real_adapter_shapes("sd15", "base"), seed=0))
    patched = inject(nodes, model, adapter)
    keys = set(attn2_patches(patched))
    expected = {("input", i, 0) for i in (1, 2, 4, 5, 7, 8)} | {("middle", 0, 0)} | \
        {("output", i, 0) for i in range(3, 12)}
    assert keys == expected and len(keys) == 16
    assert not attn2_patches(model), "the input model must stay unpatched"
    layers = sorted((p.layer, key) for key, p in attn2_patches(patched).items())
    assert layers[0] == (0, ("input", 1, 0)) and layers[-1] == (15, ("middle", 0, 0))  # adapter order


def test_every_sdxl_attn2_block_is_found_and_patchable():
    model = meta_patcher(SDXL)
    sites = comfy_unet_attn2_sites(model.get_model_object("diffusion_model"))
    assert len(sites) == 70
    by_block = {}
    for site in sites:
        by_block.setdefault((site.block, site.number), []).append(site.index)
    assert by_block == {**{("input", i): [0, 1] for i in (4, 5)}, **{("input", i): list(range(10)) for i in (7, 8)},
                        **{("output", i): list(range(10)) for i in (0, 1, 2)},
                        **{("output", i): [0, 1] for i in (3, 4, 5)}, ("middle", 0): list(range(10))}
    assert [s.inner_dim for s in sites] == [640] * 4 + [1280] * 50 + [640] * 6 + [1280] * 10
    assert {s.context_dim for s in sites} == {2048}
    kv = [(torch.zeros(1, s.inner_dim), torch.zeros(1, s.inner_dim)) for s in sites]
    injection = VisualPromptInjection(ProjectedPrompt({"positive": kv, "negative": kv}), [1.0] * 70)
    patched = model.clone()
    for site, patch in make_patches(injection, sites, {}):
        patched.set_model_attn2_replace(patch, site.block, site.number, site.index)
    assert len(attn2_patches(patched)) == 70


def _weighted_blocks(schedule, config):
    sites = comfy_unet_attn2_sites(meta_patcher(config).get_model_object("diffusion_model"))
    weights = layer_weights(schedule, sites, 1.0)
    out = {}
    for site, weight in zip(sites, weights):
        if weight:
            out.setdefault((site.block, site.number), set()).add(weight)
    return out


def test_sdxl_presets_are_ipadapter_plus_style_and_composition():
    """IPAdapter_plus on SDXL: style = transformer_index 6 (output 1, up_blocks.0.attentions.1), composition =
    index 3 (input 8, down_blocks.2.attentions.1); all 10 transformer blocks of that container, nothing else."""
    assert _weighted_blocks("style", SDXL) == {("output", 1): {1.0}}
    assert _weighted_blocks("composition", SDXL) == {("input", 8): {1.0}}
    sites = comfy_unet_attn2_sites(meta_patcher(SDXL).get_model_object("diffusion_model"))
    assert sum(w > 0 for w in layer_weights("style", sites, 0.7)) == 10


def test_sd15_presets_follow_ipadapter_plus_tables():
    assert _weighted_blocks("style", SD15) == {**{("input", i): {1.0} for i in (1, 2, 4, 5)},
                                               **{("output", i): {1.0} for i in range(5, 12)}}
    assert _weighted_blocks("composition", SD15) == {("input", 7): {0.25}, ("input", 8): {1.0}}


@pytest.fixture(scope="module")
def sdxl_narrow(nodes):
    return sdxl_narrow_patcher()


@pytest.mark.parametrize("variant", ["base", "plus"])
def test_sdxl_layout_runs_base_and_plus_decoupled(nodes, sdxl_narrow, variant):
    """SDXL's real block layout (70 attn2 in input 4-8, middle, output 0-5 at depth 2/10), narrow widths:
    the adapter's 70 layers land on it in IP-Adapter's order, weight 0 is the plain model exactly, a
    visual prompt changes it, and the style preset acts through output 1 only."""
    sites = comfy_unet_attn2_sites(sdxl_narrow.get_model_object("diffusion_model"))
    assert len(sites) == 70 and [s.key for s in sites][:3] == [("input", 4, 0), ("input", 4, 1), ("input", 5, 0)]
    adapter = adapter_for([s.inner_dim for s in sites], variant=variant, cross=2048)
    assert adapter.layout.family == "sdxl" and adapter.layout.standard_depth
    clip = FakeClipVision()  # ViT-H: 1024-d image_embeds, 1280-d hidden states, as the SDXL vit-h adapters read
    plain = run_sdxl(sdxl_narrow, [0, 1])
    zero = inject(nodes, sdxl_narrow, adapter, weight=0.0, clip_vision=clip)
    assert torch.equal(run_sdxl(zero, [0, 1]), plain)
    on = run_sdxl(inject(nodes, sdxl_narrow, adapter, clip_vision=clip), [0, 1])
    assert (on - plain).abs().max() > 1e-5 and torch.isfinite(on).all()
    styled = inject(nodes, sdxl_narrow, adapter, weight_schedule="style", clip_vision=clip)
    active = {key for key, p in attn2_patches(styled).items() if p.injection.layer_weights[p.layer]}
    assert active == {("output", 1, i) for i in range(10)}
    assert (run_sdxl(styled, [0, 1]) - plain).abs().max() > 1e-6


@pytest.mark.skipif(not COMFYUI, reason="needs ComfyUI's UNetModel forward")
@pytest.mark.parametrize("config,count", [(SD15, 16), (SDXL, 70)])
def test_comfy_forward_calls_every_patched_key_once(config, count):
    """A meta-device forward of ComfyUI's own UNet: the replace patches at our keys are the
    ones its transformer blocks look up, each exactly once."""
    model = meta_patcher(config)
    unet = model.get_model_object("diffusion_model")
    calls = []

    def recorder(key):
        return lambda q, k, v, extra: calls.append(key) or q

    options = {"patches_replace": {"attn2": {s.key: recorder(s.key) for s in comfy_unet_attn2_sites(unet)}},
               "optimized_attention_override": lambda func, q, *args, **kwargs: q}
    batch = 1
    x = torch.empty(batch, 4, 16, 16, device="meta")
    extra = {"y": torch.empty(batch, 2816, device="meta")} if config is SDXL else {}
    unet(x, torch.empty(batch, device="meta"), context=torch.empty(batch, 7, config["context_dim"], device="meta"),
         transformer_options=options, **extra)
    assert len(calls) == count and len(set(calls)) == count


def test_weight_zero_equals_the_unpatched_model_exactly(nodes, tiny_patcher, tiny_adapter):
    x, context = tiny_inputs(2)
    plain = run_model(tiny_patcher, x, context, [0, 1])
    patched = inject(nodes, tiny_patcher, tiny_adapter, weight=0.0)
    assert len(attn2_patches(patched)) == 7
    assert torch.equal(run_model(patched, x, context, [0, 1]), plain)
    assert not torch.equal(run_model(inject(nodes, tiny_patcher, tiny_adapter, weight=1.0), x, context, [0, 1]), plain)


def test_injectors_stack(nodes, tiny_patcher, tiny_adapter):
    x, context = tiny_inputs(2)
    other_image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(9))
    plain = run_model(tiny_patcher, x, context, [1, 0])
    first = inject(nodes, tiny_patcher, tiny_adapter, weight=0.6)
    second_only = inject(nodes, tiny_patcher, tiny_adapter, weight=0.4, image=other_image)
    both = inject(nodes, first, tiny_adapter, weight=0.4, image=other_image)
    assert all(p.previous is not None for p in attn2_patches(both).values())
    out_first, out_second = run_model(first, x, context, [1, 0]), run_model(second_only, x, context, [1, 0])
    out_both = run_model(both, x, context, [1, 0])
    assert not torch.allclose(out_both, out_first) and not torch.allclose(out_both, out_second)
    if not COMFYUI:  # stand-in blocks are independent and affine in their attention: contributions add up
        torch.testing.assert_close(out_both, out_first + out_second - plain, atol=1e-5, rtol=1e-4)
    models = {id(m) for p in attn2_patches(both).values() for m in p.models()}
    assert len(models) == 2, "each injector's keys/values are declared to the memory manager once"


def test_start_end_gating(nodes, tiny_patcher, tiny_adapter):
    x, context = tiny_inputs(1)
    sampling = tiny_patcher.get_model_object("model_sampling")
    start, end = sampling.percent_to_sigma(0.3), sampling.percent_to_sigma(0.6)
    gated = inject(nodes, tiny_patcher, tiny_adapter, start_percent=0.3, end_percent=0.6)
    for sigma, active in ((start * 1.5, False), ((start + end) / 2, True), (end * 0.5, False)):
        plain = run_model(tiny_patcher, x, context, [0], sigma)
        assert torch.equal(run_model(gated, x, context, [0], sigma), plain) is not active, sigma


def test_clone_shares_unet_weights_and_declares_kv_to_the_memory_manager(nodes, tiny_patcher, tiny_adapter):
    patched = inject(nodes, tiny_patcher, tiny_adapter)
    assert patched.model is tiny_patcher.model
    before = {n: p.data_ptr() for n, p in tiny_patcher.model.named_parameters()}
    assert {n: p.data_ptr() for n, p in patched.model.named_parameters()} == before
    models = {id(m): m for p in attn2_patches(patched).values() for m in p.models()}
    assert len(models) == 1
    (kv_patcher,) = models.values()
    adapter_bytes = sum(t.numel() * t.element_size() for t in tiny_adapter.state_dict().values())
    kv_bytes = sum(p.numel() * p.element_size() for p in kv_patcher.model.parameters())
    assert kv_bytes < adapter_bytes / 10, "only projected keys/values are kept per injector"
    if COMFYUI:
        import comfy.model_management as mm

        assert kv_patcher in patched.model_patches_models()
        mm.load_models_gpu([patched])
        loaded = [m.model for m in mm.current_loaded_models]
        assert patched in loaded and kv_patcher in loaded
        mm.unload_all_models()


def test_visual_prompt_input_replaces_image_and_clip(nodes, tiny_patcher, tiny_adapter):
    from emotion_core.visual_prompt import build_visual_prompt

    clip = FakeClipVision()
    prompt = build_visual_prompt(tiny_adapter, lambda im: clip.encode_image(im)["image_embeds"], IMAGE)
    x, context = tiny_inputs(2)
    from_prompt = inject(nodes, tiny_patcher, tiny_adapter, image=None, clip_vision=None, visual_prompt=prompt)
    from_image = inject(nodes, tiny_patcher, tiny_adapter)
    torch.testing.assert_close(run_model(from_prompt, x, context, [0, 1]), run_model(from_image, x, context, [0, 1]))


@pytest.mark.parametrize("kwargs,message", [
    (dict(image=torch.zeros(0, 32, 32, 3)), "empty batch"),
    (dict(weight=2.5), "weight must be between"),
    (dict(weight=-0.1), "weight must be between"),
    (dict(start_percent=0.7, end_percent=0.2), "start_percent .0.7. must be <= end_percent"),
    (dict(weight_schedule="1,2"), "schedule has 2 values"),
    (dict(image=None), "connect image and clip_vision, or a visual_prompt"),
    (dict(clip_vision=FakeClipVision(embeds=1280)), "reads 1024-d CLIP vision image_embeds"),
])
def test_bad_input_is_a_clear_error(nodes, tiny_patcher, tiny_adapter, kwargs, message):
    with pytest.raises(node_error(), match=message):
        inject(nodes, tiny_patcher, tiny_adapter, **kwargs)


def test_visual_prompt_and_image_together_is_an_error(nodes, tiny_patcher, tiny_adapter):
    from emotion_core.visual_prompt import build_visual_prompt

    prompt = build_visual_prompt(tiny_adapter, lambda im: torch.zeros(im.shape[0], 1024), IMAGE)
    with pytest.raises(node_error(), match="either visual_prompt or image"):
        inject(nodes, tiny_patcher, tiny_adapter, visual_prompt=prompt)


def test_family_mismatch_both_ways(nodes, tiny_adapter):
    sdxl_adapter = adapter_for((640, 640), cross=2048)
    with pytest.raises(node_error(), match=r"adapter is for SDXL .* but the model is SD1.5"):
        inject(nodes, meta_patcher(SD15), sdxl_adapter)
    with pytest.raises(node_error(), match=r"adapter is for SD15 .* but the model is SDXL"):
        inject(nodes, meta_patcher(SDXL), tiny_adapter)


def test_plus_adapter_reads_hidden_states_and_the_neutral_image(nodes, tiny_patcher):
    plus = adapter_for(TINY_LAYER_DIMS, variant="plus", seed=2)
    clip = FakeClipVision()
    patched = inject(nodes, tiny_patcher, plus, clip_vision=clip)
    assert clip.calls == 2  # the images, and the neutral image for the negative branch
    x, context = tiny_inputs(2)
    assert torch.isfinite(run_model(patched, x, context, [0, 1])).all()
