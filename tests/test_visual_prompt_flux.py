"""Flux IP-Adapters (XLabs and InstantX formats): layouts read from the published key layouts,
and, with COMFYUI_PATH, the DiT block patches on ComfyUI's own ``Flux`` model: weight 0 is the
plain model exactly, each block equals a reference of the published processor, chunks get their
roles, and mismatched families/dims are clear errors naming both."""

import os

import pytest
import torch

from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.testing.adapter_assets import (
    flux_adapter_shapes,
    random_state_dict,
    real_adapter_shapes,
    real_flux_adapter_shapes,
    write_flux_ip_adapter,
)
from emotion_core.visual_prompt import (
    VisualPromptAdapter,
    build_visual_prompt,
    detect_layout,
)
from emotion_core.visual_prompt.adapter import load_adapter
from emotion_core.visual_prompt.flux_injection import (
    FluxModelShape,
    check_flux_adapter,
    flux_layer_weights,
)
from emotion_core.visual_prompt.flux_ip_adapter import FluxIPAdapter
from emotion_core.visual_prompt.flux_layout import detect_flux_layout

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))
FLUX1 = FluxModelShape(19, 38, 3072, 24, 4096)


@pytest.mark.parametrize("variant,tokens,feature,layers", [("xlabs", 4, 768, 19), ("instantx", 128, 1152, 57)])
def test_detects_the_published_flux_layouts(variant, tokens, feature, layers):
    layout = detect_flux_layout(random_state_dict(real_flux_adapter_shapes(variant), device="meta"))
    assert (layout.family, layout.variant, layout.tokens, layout.feature_dim, layout.layers, layout.hidden,
            layout.cross_dim) == ("flux", variant, tokens, feature, layers, 3072, 4096)
    keys = check_flux_adapter(layout, FLUX1)
    assert keys[0] == ("double_block", 0) and keys[18] == ("double_block", 18)
    assert len(keys) == layers and (variant == "xlabs" or keys[-1] == ("single_block", 37))


def test_files_load_in_both_formats(tmp_path):
    xlabs = load_adapter(write_flux_ip_adapter(tmp_path / "ip_adapter.safetensors", "xlabs", 2, 64))
    instantx = load_adapter(write_flux_ip_adapter(tmp_path / "ip-adapter.bin", "instantx", 5, 64, tokens=8))
    assert isinstance(xlabs, FluxIPAdapter) and isinstance(instantx, FluxIPAdapter)
    assert (xlabs.layout.variant, xlabs.layout.layers, instantx.layout.variant, instantx.layout.tokens) == \
        ("xlabs", 2, "instantx", 8)
    tokens = instantx.project(torch.randn(1, 1152))
    k, _ = instantx.layer_kv(tokens[0], head_dim=32)[0]
    rms = k.unflatten(-1, (2, 32)).pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)  # per-head RMS-normalised, as InstantX does


@pytest.mark.parametrize("mutate,message", [
    (lambda s: s.pop("double_blocks.1.processor.ip_adapter_double_stream_v_proj.bias"), "block 1 has"),
    (lambda s: s.__setitem__("double_blocks.0.processor.ip_adapter_double_stream_k_proj.weight",
                             torch.empty(64, 512, device="meta")), "expected \\(64, 4096\\)"),
    (lambda s: s.pop("ip_adapter_proj_model.norm.weight"), "without norm"),
])
def test_broken_flux_files_say_what_is_wrong(mutate, message):
    state = random_state_dict(flux_adapter_shapes("xlabs", 2, 64), device="meta")
    mutate(state)
    with pytest.raises(ModelFormatError, match=message):
        detect_flux_layout(state)


def test_family_and_dimension_mismatches_name_both():
    sd15 = detect_layout(random_state_dict(real_adapter_shapes("sd15", "base"), device="meta"))
    with pytest.raises(InvalidInputError, match=r"adapter is for SD1.5 .* but the model is Flux"):
        check_flux_adapter(sd15, FLUX1)
    tiny = detect_flux_layout(random_state_dict(flux_adapter_shapes("xlabs", 2, 64), device="meta"))
    with pytest.raises(InvalidInputError, match="DiT of width 64 but the model's blocks are 3072 wide"):
        check_flux_adapter(tiny, FLUX1)
    with pytest.raises(InvalidInputError, match="has 2 block layers but the model has 19 double blocks"):
        check_flux_adapter(tiny, FluxModelShape(19, 38, 64, 2, 4096))


def test_flux_schedules():
    keys = [("double_block", 0), ("double_block", 1), ("single_block", 0)]
    assert flux_layer_weights("uniform", keys, 0.5) == [0.5] * 3
    assert flux_layer_weights("1,0", keys, 0.5) == [0.5, 0.5, 0.0]
    assert flux_layer_weights("0,1,2", keys, 1.0) == [0.0, 1.0, 2.0]
    with pytest.raises(InvalidInputError, match="names UNet blocks"):
        flux_layer_weights("style", keys, 1.0)


def test_instantx_refuses_a_siglip_sequence_with_the_reason():
    adapter = FluxIPAdapter.from_state_dict(random_state_dict(flux_adapter_shapes("instantx", 2, 64, tokens=2),
                                                              dtype=torch.float32))
    with pytest.raises(InvalidInputError, match=r"pooled output .*ComfyUI's SigLIP has no pooling head"):
        adapter.project(torch.randn(1, 729, 1152))
    with pytest.raises(InvalidInputError, match="reads 1152-d SigLIP"):
        adapter.project(torch.randn(1, 768))


# --- real ComfyUI: the DiT patches on comfy.ldm.flux.model.Flux -------------------------------------

needs_comfy = pytest.mark.skipif(not COMFYUI, reason="needs ComfyUI's Flux model")


@pytest.fixture(scope="module")
def flux(visual_prompt_nodes, tmp_path_factory):
    from helpers.flux_models import tiny_flux_patcher

    folder = tmp_path_factory.mktemp("flux_adapters")
    adapters = {"xlabs": load_adapter(write_flux_ip_adapter(folder / "x.safetensors", "xlabs", 2, 64)),
                "instantx": load_adapter(write_flux_ip_adapter(folder / "i.bin", "instantx", 5, 64, tokens=6))}
    return visual_prompt_nodes, tiny_flux_patcher(), adapters


def _prompt(adapter, seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = adapter.layout.feature_dim
    return build_visual_prompt(adapter, lambda images: torch.randn(images.shape[0], dim, generator=g),
                               torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3))


def _inject(nodes, model, adapter, weight=1.0, **kwargs):
    values = dict(weight=weight, weight_schedule="uniform", start_percent=0.0, end_percent=1.0,
                  visual_prompt=_prompt(adapter))
    values.update(kwargs)
    return nodes["VisualPromptInjector"].execute(model=model, adapter=adapter, **values).args[0]


@needs_comfy
@pytest.mark.parametrize("variant", ["xlabs", "instantx"])
def test_weight_zero_is_the_plain_flux_and_weight_one_changes_it(flux, variant):
    from helpers.flux_models import flux_inputs, run_flux

    nodes, model, adapters = flux
    inputs = flux_inputs(2)
    plain = run_flux(model, inputs, [0, 1])
    zero = _inject(nodes, model, adapters[variant], weight=0.0)
    assert len(zero.model_options["transformer_options"]["patches_replace"]["dit"]) == adapters[variant].layout.layers
    assert torch.equal(run_flux(zero, inputs, [0, 1]), plain)
    on = run_flux(_inject(nodes, model, adapters[variant]), inputs, [0, 1])
    assert (on[:1] - plain[:1]).abs().max() > 1e-4 and torch.isfinite(on).all()
    assert "dit" not in model.model_options["transformer_options"].get("patches_replace", {})  # input stays plain


@needs_comfy
@pytest.mark.parametrize("variant,kind,index", [("xlabs", "double_block", 1), ("instantx", "double_block", 0),
                                                ("instantx", "single_block", 2)])
def test_each_block_equals_the_published_processor(flux, variant, kind, index):
    from helpers import flux_models as ref

    nodes, model, adapters = flux
    adapter = adapters[variant]
    patched = _inject(nodes, model, adapter, weight=0.7)
    patch = patched.model_options["transformer_options"]["patches_replace"]["dit"][(kind, index)]
    dm = model.get_model_object("diffusion_model")
    g = torch.Generator().manual_seed(5)
    txt, img = torch.randn(1, 5, 64, generator=g), torch.randn(1, 16, 64, generator=g)
    vec = torch.randn(1, 64, generator=g)
    ids = torch.zeros(1, 21, 3)
    ids[0, 5:, 1], ids[0, 5:, 2] = torch.arange(16) // 4, torch.arange(16) % 4
    pe = dm.pe_embedder(ids)
    layer = patch.layer
    k_ip, v_ip = (t[None] for t in adapter.layer_kv(_prompt(adapter).tokens["positive"], ref.HEAD_DIM)[layer])
    options = {"cond_or_uncond": [0]}
    with torch.no_grad():
        if kind == "double_block":
            block = dm.double_blocks[index]
            wrap = lambda a: dict(zip(("img", "txt"), block(img=a["img"], txt=a["txt"], vec=a["vec"], pe=a["pe"],
                                                            transformer_options=a["transformer_options"])))
            out = patch({"img": img, "txt": txt.clone(), "vec": vec, "pe": pe, "transformer_options": options},
                        {"original_block": wrap})
            reference = ref.reference_xlabs_double if variant == "xlabs" else ref.reference_instantx_double
            want_img, want_txt = reference(block, img, txt.clone(), vec, pe, k_ip, v_ip, 0.7)
            assert torch.allclose(out["img"], want_img, atol=1e-5) and torch.allclose(out["txt"], want_txt, atol=1e-5)
            assert (want_img - wrap({"img": img, "txt": txt.clone(), "vec": vec, "pe": pe,
                                     "transformer_options": {}})["img"]).abs().max() > 1e-4
        else:
            block = dm.single_blocks[index]
            x = torch.cat((txt, img), 1)
            wrap = lambda a: {"img": block(a["img"], vec=a["vec"], pe=a["pe"],
                                           transformer_options=a["transformer_options"])}
            out = patch({"img": x.clone(), "vec": vec, "pe": pe, "transformer_options": options},
                        {"original_block": wrap})
            want = ref.reference_instantx_single(block, x.clone(), vec, pe, k_ip, v_ip, 0.7)
            assert torch.allclose(out["img"], want, atol=1e-5)


@needs_comfy
@pytest.mark.parametrize("variant", ["xlabs", "instantx"])
def test_chunks_get_their_roles_and_split_calls_match(flux, variant):
    from helpers.flux_models import flux_inputs, run_flux

    nodes, model, adapters = flux
    patched = _inject(nodes, model, adapters[variant])
    inputs = flux_inputs(2)
    joint = run_flux(patched, inputs, [1, 0])
    first = run_flux(patched, {k: v[:1] for k, v in inputs.items()}, [1])
    second = run_flux(patched, {k: v[1:] for k, v in inputs.items()}, [0])
    assert torch.allclose(joint, torch.cat([first, second]), atol=1e-5)
    swapped = run_flux(patched, inputs, [0, 1])
    assert (swapped[:1] - joint[:1]).abs().max() > 1e-5  # the same rows with the other role's tokens


@needs_comfy
def test_injectors_stack_and_errors_name_both_families(flux):
    from helpers.flux_models import flux_inputs, run_flux
    from helpers.visual_prompt_models import SD15, meta_patcher

    nodes, model, adapters = flux
    inputs = flux_inputs(1)
    once = _inject(nodes, model, adapters["xlabs"])
    twice = _inject(nodes, once, adapters["instantx"])
    assert not torch.equal(run_flux(twice, inputs, [0]), run_flux(once, inputs, [0]))
    assert torch.equal(run_flux(_inject(nodes, once, adapters["instantx"], weight=0.0), inputs, [0]),
                       run_flux(once, inputs, [0]))
    sd15 = VisualPromptAdapter.from_state_dict(random_state_dict(real_adapter_shapes("sd15", "base"), seed=0))
    with pytest.raises(InvalidInputError, match=r"adapter is for SD1.5 .* but the model is Flux"):
        _inject(nodes, model, sd15, visual_prompt=None, image=torch.rand(1, 8, 8, 3), clip_vision=object())
    with pytest.raises(InvalidInputError, match=r"adapter is for Flux \(xlabs format.* but the model is an SD1.5/SDXL"):
        _inject(nodes, meta_patcher(SD15), adapters["xlabs"])


def _bank(width, kind="ip-adapter"):
    from emotion_core.bank.store import PROBE_TEXTS, PromptBank
    from emotion_core.taxonomy import EMOTIONS

    g = torch.Generator().manual_seed(0)
    visual = {e: torch.randn(2, width, generator=g) for e in EMOTIONS}
    extra = {} if kind != "flux-redux" else {"siglip_centres": {e: torch.randn(2, 3, width, generator=g)
                                                                for e in EMOTIONS}}
    return PromptBank({e: torch.randn(2, 8, generator=g) for e in EMOTIONS}, visual,
                      {e: torch.tensor([3, 1]) for e in EMOTIONS}, torch.randn(len(PROBE_TEXTS), 8, generator=g),
                      {"built_for": kind}, extra_centres=extra)


def test_prompt_banks_on_flux_adapters():
    """A ViT-L (768-d image_embeds) bank serves XLabs; an SD1.5/SDXL ViT-H bank or a Redux bank names both sides."""
    from emotion_core.bank.retrieval import bank_visual_prompt

    xlabs = FluxIPAdapter.from_state_dict(random_state_dict(flux_adapter_shapes("xlabs", 2, 64), dtype=torch.float32))
    prompt = bank_visual_prompt(xlabs, _bank(768), "awe", None, 2, negative_emotion="fear")
    assert (prompt.family, prompt.variant) == ("flux", "xlabs")
    assert prompt.tokens["positive"].shape == (4, 4096) and prompt.tokens["negative_visual"].shape == (4, 4096)
    with pytest.raises(InvalidInputError, match=r"holds 1024-d image_embeds \(CLIP ViT-H/14, the SD1.5/SDXL .* Flux"):
        bank_visual_prompt(xlabs, _bank(1024), "awe", None, 2)
    with pytest.raises(InvalidInputError, match="for Flux's Redux path .* not for a Flux IP-Adapter"):
        bank_visual_prompt(xlabs, _bank(1152, "flux-redux"), "awe", None, 2)
    instantx = FluxIPAdapter.from_state_dict(random_state_dict(flux_adapter_shapes("instantx", 2, 64, tokens=2),
                                                               dtype=torch.float32))
    with pytest.raises(InvalidInputError, match="built for SD1.5/SDXL IP-Adapter adapters .* Flux instantx"):
        bank_visual_prompt(instantx, _bank(1152), "awe", None, 2)
