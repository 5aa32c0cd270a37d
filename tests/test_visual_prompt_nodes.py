"""Visual prompt nodes on a UNet: every attn2 block patched (SD1.5: 16, SDXL: 70),
weight 0 is exact, injectors stack, start/end gating, shared weights and the
memory manager hooks, and the nodes' input errors.

With COMFYUI_PATH the UNets are ComfyUI's own ``UNetModel`` (full SD1.5/SDXL
configs on the meta device for counting, a tiny one for forward passes) inside
real ``ModelPatcher``s. Without it, stand-ins built here follow ComfyUI's block
numbering and attn2 replace protocol (comfy/ldm/modules/attention.py).
"""

import copy
import functools
import os
import sys
import types

import pytest
import torch
from torch import nn

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))
if COMFYUI:
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # must precede the first comfy.model_management import: no GPU here

from emotion_core.testing.adapter_assets import (  # noqa: E402
    adapter_shapes,
    random_state_dict,
    real_adapter_shapes,
    write_test_adapters,
)
from emotion_core.visual_prompt import (  # noqa: E402
    ProjectedPrompt,
    VisualPromptAdapter,
    VisualPromptInjection,
    comfy_unet_attn2_sites,
    make_patches,
)

# ComfyUI UNetModel configs (values as ComfyUI's model detection produces them).
SD15 = dict(model_channels=320, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
            transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], context_dim=768, num_heads=8,
            num_head_channels=-1, use_linear_in_transformer=False, adm_in_channels=None)
SDXL = dict(model_channels=320, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
            transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=10,
            transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], context_dim=2048, num_heads=-1,
            num_head_channels=64, use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential")
TINY = dict(model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[1, 1],
            transformer_depth_middle=1, transformer_depth_output=[1, 1, 1, 1], context_dim=768, num_heads=2,
            num_head_channels=-1, use_linear_in_transformer=False, adm_in_channels=None)
TINY_LAYER_DIMS = (32, 64, 64, 64, 32, 32, 64)  # adapter order: input, output, middle
COMMON = dict(in_channels=4, out_channels=4, image_size=32, use_spatial_transformer=True, legacy=False,
              use_checkpoint=False, use_temporal_attention=False, use_temporal_resblock=False)
CPU = torch.device("cpu")


# --- stand-ins (only without COMFYUI_PATH) -------------------------------------------------------

class StandInAttention(nn.Module):
    def __init__(self, dim, context_dim, heads, device=None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False, device=device)
        self.to_k = nn.Linear(context_dim, dim, bias=False, device=device)
        self.to_v = nn.Linear(context_dim, dim, bias=False, device=device)
        self.to_out = nn.Linear(dim, dim, device=device)


def _standin_transformer(depth, dim, config, device):
    heads = config["num_heads"] if config["num_heads"] > 0 else dim // config["num_head_channels"]
    module = nn.Module()
    module.transformer_blocks = nn.ModuleList()
    for _ in range(depth):
        block = nn.Module()
        block.attn2 = StandInAttention(dim, config["context_dim"], heads, device)
        module.transformer_blocks.append(block)
    return module


def standin_unet(config, device="meta"):
    """ComfyUI's UNet block numbering: input block 0 is conv_in, a level ends with a downsample
    block; output levels have one block more than input levels."""
    unet = nn.Module()
    unet.input_blocks, unet.output_blocks = nn.ModuleList([nn.Sequential()]), nn.ModuleList()
    depths, out_depths = list(config["transformer_depth"]), list(config["transformer_depth_output"])
    mults = config["channel_mult"]
    for level, mult in enumerate(mults):
        for _ in range(config["num_res_blocks"][level]):
            depth, dim = depths.pop(0), config["model_channels"] * mult
            unet.input_blocks.append(nn.Sequential(*([_standin_transformer(depth, dim, config, device)] if depth else [])))
        if level != len(mults) - 1:
            unet.input_blocks.append(nn.Sequential())
    top = config["model_channels"] * mults[-1]
    unet.middle_block = nn.Sequential(_standin_transformer(config["transformer_depth_middle"], top, config, device))
    for level, mult in reversed(list(enumerate(mults))):
        for _ in range(config["num_res_blocks"][level] + 1):
            depth, dim = out_depths.pop(), config["model_channels"] * mult  # ComfyUI pops these from the end
            unet.output_blocks.append(nn.Sequential(*([_standin_transformer(depth, dim, config, device)] if depth else [])))
    return unet


class StandInSampling:
    def percent_to_sigma(self, percent):
        return 999999999.9 if percent <= 0 else 0.0 if percent >= 1 else 14.6 * (1 - percent) ** 2


class StandInBaseModel(nn.Module):
    """``apply_model`` runs every attn2 in execution order with ComfyUI's replace-patch lookup;
    each block reads the first ``inner`` channels of ``x`` ``[B, N, W]``."""

    def __init__(self, unet):
        super().__init__()
        self.diffusion_model, self.model_sampling = unet, StandInSampling()

    def apply_model(self, x, t, c_crossattn=None, transformer_options={}, **_):
        from comfy.ldm.modules.attention import optimized_attention

        unet, outputs = self.diffusion_model, []
        order = [("input", list(unet.input_blocks)), ("middle", [unet.middle_block]), ("output", list(unet.output_blocks))]
        replace = transformer_options.get("patches_replace", {}).get("attn2", {})
        for name, blocks in order:
            for number, sequence in enumerate(blocks):
                for layer in sequence:
                    for index, block in enumerate(layer.transformer_blocks):
                        attn = block.attn2
                        extra = {k: v for k, v in transformer_options.items() if k not in ("patches", "patches_replace")}
                        extra.update(n_heads=attn.heads, attn_precision=None, block=(name, number), block_index=index)
                        n = x[..., :attn.to_q.in_features]
                        q, k, v = attn.to_q(n), attn.to_k(c_crossattn), attn.to_v(c_crossattn)
                        patch = replace.get((name, number, index), replace.get((name, number)))
                        out = patch(q, k, v, extra) if patch else optimized_attention(q, k, v, attn.heads)
                        outputs.append(attn.to_out(out).flatten(1))
        return torch.cat(outputs, dim=1)


class StandInModelPatcher:
    """The parts of ``comfy.model_patcher.ModelPatcher`` the injector uses (same semantics:
    clone shares the model and deep-copies model_options)."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.model_options = {"transformer_options": {}}

    def clone(self):
        clone = StandInModelPatcher(self.model, self.load_device, self.offload_device)
        clone.model_options = copy.deepcopy(self.model_options)
        return clone

    def get_model_object(self, name):
        return functools.reduce(getattr, name.split("."), self.model)

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None):
        key = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        self.model_options["transformer_options"].setdefault("patches_replace", {}).setdefault("attn2", {})[key] = patch


def _sdpa(q, k, v, heads, **_):
    from emotion_core.visual_prompt import sdpa_attention

    return sdpa_attention(q, k, v, heads)


@pytest.fixture(scope="module", autouse=True)
def comfy_modules():
    """Without ComfyUI: the two ComfyUI modules the injector imports, as stand-ins."""
    if COMFYUI:
        yield
        return
    names = ("comfy.model_patcher", "comfy.ldm", "comfy.ldm.modules", "comfy.ldm.modules.attention")
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["comfy.model_patcher"].ModelPatcher = StandInModelPatcher
    sys.modules["comfy.ldm.modules.attention"].optimized_attention = _sdpa
    yield
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


# --- models in either world ------------------------------------------------------------------------

def meta_patcher(config):
    """A patcher around a full-size UNet on the meta device (counting only)."""
    if not COMFYUI:
        return StandInModelPatcher(StandInBaseModel(standin_unet(config)), CPU, CPU)
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.model_patcher import ModelPatcher

    holder = nn.Module()
    holder.diffusion_model = UNetModel(**COMMON, **config, device="meta", operations=comfy.ops.disable_weight_init)
    return ModelPatcher(holder, CPU, CPU)


def _init_weights(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:  # 1-d weights are norm scales
                p.copy_(torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
    return module


@pytest.fixture(scope="module")
def tiny_patcher():
    """A runnable tiny SD1.5-style model (7 attn2 blocks) in a ModelPatcher."""
    if not COMFYUI:
        return StandInModelPatcher(_init_weights(StandInBaseModel(standin_unet(TINY, device=CPU))), CPU, CPU)
    import comfy.supported_models
    from comfy.model_patcher import ModelPatcher

    model_config = comfy.supported_models.SD15({**COMMON, **TINY})
    model = model_config.get_model({}, device=CPU)
    _init_weights(model.diffusion_model)
    return ModelPatcher(model, CPU, CPU)


def tiny_inputs(chunks, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = 2 * chunks
    x = torch.randn(batch, 4, 16, 16, generator=g) if COMFYUI else torch.randn(batch, 10, 64, generator=g)
    return x, torch.randn(batch, 7, 768, generator=g)


def run_model(patcher, x, context, cond_or_uncond, sigma=5.0):
    """One model call as ComfyUI's calc_cond_batch makes it: the patcher's transformer options
    plus the chunk conditions and the sigmas."""
    options = {**patcher.model_options["transformer_options"], "cond_or_uncond": list(cond_or_uncond),
               "sigmas": torch.full((x.shape[0] // len(cond_or_uncond),), sigma)}
    with torch.no_grad():
        return patcher.model.apply_model(x, torch.full((x.shape[0],), sigma), c_crossattn=context,
                                         transformer_options=options)


# --- adapters and nodes -------------------------------------------------------------------------------

def adapter_for(dims, variant="base", cross=768, seed=0):
    """Built with the pack's own classes, so its errors are the ones the nodes raise."""
    from emotion_core.visual_prompt import VisualPromptAdapter as PackAdapter

    shapes = adapter_shapes(variant, cross, dims, resampler_dim=128, resampler_heads=2, depth=1)
    return PackAdapter.from_state_dict(random_state_dict(shapes, seed=seed, dtype=torch.float32))


@pytest.fixture(scope="module")
def tiny_adapter(nodes):
    return adapter_for(TINY_LAYER_DIMS, seed=1)


class FakeClipVision:
    """CLIP_VISION stand-in: ``encode_image`` returns ComfyUI's output keys with deterministic features."""

    def __init__(self, embeds=1024, hidden=1280):
        self.embeds, self.hidden, self.calls = embeds, hidden, 0

    def encode_image(self, image, crop=True):
        self.calls += 1
        g = torch.Generator().manual_seed(int(image.sum() * 1000) % 10_000)
        return {"image_embeds": torch.randn(image.shape[0], self.embeds, generator=g),
                "penultimate_hidden_states": torch.randn(image.shape[0], 257, self.hidden, generator=g)}


@pytest.fixture(scope="module")
def nodes(pack, comfy_models_dir):
    from emotion_director_pack.nodes import visual_prompt

    write_test_adapters(comfy_models_dir, {"adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
                                           "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors"})
    return {cls.define_schema().node_id: cls for cls in visual_prompt.NODES}


IMAGE = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(3))


def inject(nodes, model, adapter, **kwargs):
    values = dict(weight=1.0, weight_schedule="uniform", start_percent=0.0, end_percent=1.0, clip_vision=FakeClipVision(),
                  image=IMAGE)
    values.update(kwargs)
    return nodes["VisualPromptInjector"].execute(model=model, adapter=adapter, **values).args[0]


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
