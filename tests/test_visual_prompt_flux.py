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
    xlabs = load_adapter(write_flux_ip_adapter(tmp_path / "ip_adapter.safetensors", "xlabs", 2, 64, tokens=1))
    instantx = load_adapter(write_flux_ip_adapter(tmp_path / "ip-adapter.bin", "instantx", 5, 64, tokens=1))
    assert isinstance(xlabs, FluxIPAdapter) and isinstance(instantx, FluxIPAdapter)
    assert (xlabs.layout.variant, xlabs.layout.layers, instantx.layout.variant, instantx.layout.tokens) == \
        ("xlabs", 2, "instantx", 1)
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
                "instantx": load_adapter(write_flux_ip_adapter(folder / "i.bin", "instantx", 5, 64, tokens=2))}
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


# --- the DiT patch logic without ComfyUI: blocks with the attribute names of comfy/ldm/flux/layers.py ------

class _Mod:
    def __init__(self, shift, scale, gate):
        self.shift, self.scale, self.gate = shift, scale, gate


class _Modulation(torch.nn.Module):
    def __init__(self, hidden, double):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = torch.nn.Linear(hidden, self.multiplier * hidden)

    def forward(self, vec):
        out = self.lin(torch.nn.functional.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)
        return _Mod(*out[:3]), (_Mod(*out[3:]) if self.multiplier == 6 else None)


class _QKNorm(torch.nn.Module):
    def __init__(self, head_dim):
        super().__init__()
        self.query_norm = torch.nn.RMSNorm(head_dim)


def _mini_block(kind, hidden=32, heads=2, seed=0):
    torch.manual_seed(seed)
    block = torch.nn.Module()
    norm = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
    if kind == "double_block":
        block.img_mod, block.img_norm1 = _Modulation(hidden, True), norm
        block.img_attn = torch.nn.Module()
        block.img_attn.qkv, block.img_attn.norm = torch.nn.Linear(hidden, 3 * hidden), _QKNorm(hidden // heads)
    else:
        block.modulation, block.pre_norm = _Modulation(hidden, False), norm
        block.linear1, block.norm = torch.nn.Linear(hidden, 3 * hidden + 4 * hidden), _QKNorm(hidden // heads)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    return block


def _reference_query(block, kind, x, vec, heads):
    """The query as ComfyUI's block computes it: the full fused projection, view, permute, QK-norm."""
    if kind == "double_block":
        mod, _ = block.img_mod(vec)
        qkv = block.img_attn.qkv((1 + mod.scale) * block.img_norm1(x) + mod.shift)
        norm = block.img_attn.norm
    else:
        mod, _ = block.modulation(vec)
        qkv = block.linear1((1 + mod.scale) * block.pre_norm(x) + mod.shift)[..., :3 * x.shape[-1]]
        norm = block.norm
    q = qkv.view(qkv.shape[0], qkv.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)[0]
    return norm.query_norm(q)


def _flux_patch(variant, kind, weight=0.5):
    from emotion_core.visual_prompt import ProjectedPrompt, VisualPromptInjection
    from emotion_core.visual_prompt.flux_injection import FluxImagePromptBlock

    g = torch.Generator().manual_seed(3)
    kv = {role: [(torch.randn(t, 32, generator=g), torch.randn(t, 32, generator=g))]
          for role, t in (("positive", 4), ("negative", 4), ("negative_visual", 6))}
    injection = VisualPromptInjection(ProjectedPrompt(kv), [weight])
    block = _mini_block(kind)
    return FluxImagePromptBlock(injection, 0, block, kind, variant, heads=2), block, kv


def _ip(q, k, v, heads=2):
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(0, 1)[None]  # noqa: E731
    out = torch.nn.functional.scaled_dot_product_attention(q, split(k), split(v))
    return out.transpose(1, 2).flatten(2)


@pytest.mark.parametrize("kind", ["double_block", "single_block"])
def test_query_is_the_blocks_own_from_its_query_rows(kind):
    from emotion_core.visual_prompt.flux_injection import block_query

    block = _mini_block(kind)
    x, vec = torch.randn(2, 5, 32), torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(block_query(block, kind, {"img": x, "vec": vec}, 2),
                                   _reference_query(block, kind, x, vec, 2))


def test_xlabs_patch_adds_image_attention_after_the_block_with_each_chunks_role():
    patch, block, kv = _flux_patch("xlabs", "double_block")
    img, txt, vec = torch.randn(2, 5, 32), torch.randn(2, 3, 32), torch.randn(2, 32)
    original = lambda args: {"img": args["img"] * 2, "txt": args["txt"]}  # noqa: E731
    options = {"cond_or_uncond": [1, 0]}
    with torch.no_grad():
        out = patch({"img": img, "txt": txt, "vec": vec, "pe": None, "transformer_options": options},
                    {"original_block": original})
        q = _reference_query(block, "double_block", img, vec, 2)
        expected = torch.cat([_ip(q[:1], *kv["negative"][0]), _ip(q[1:], *kv["positive"][0])])
    torch.testing.assert_close(out["img"], img * 2 + 0.5 * expected)
    assert torch.equal(out["txt"], txt)


@pytest.mark.parametrize("kind", ["double_block", "single_block"])
def test_instantx_patch_adds_inside_the_attention_through_the_override(kind):
    """ComfyUI's wrap_attn calls transformer_options["optimized_attention_override"](func, ...) for the
    block's attention; the patch's override adds the image attention to the image tokens' rows (double)
    or every row (single) and hands the rest of the block back to the block."""
    from emotion_core.visual_prompt.flux_injection import OVERRIDE_OPTION

    patch, block, kv = _flux_patch("instantx", kind)
    txt_len, img = 3, torch.randn(1, 5, 32)
    vec = torch.randn(1, 32)
    attention_out = torch.randn(1, txt_len + 5, 32)
    seen = {}

    def original(args):
        override = args["transformer_options"][OVERRIDE_OPTION]
        seen["attn"] = override(lambda *a, **k: attention_out, "q", "k", "v", 2, skip_reshape=True)
        return {"img": args["img"]}

    x = img if kind == "double_block" else torch.cat([torch.randn(1, txt_len, 32), img], 1)
    options = {"cond_or_uncond": [0]}
    with torch.no_grad():
        patch({"img": x, "txt": torch.randn(1, txt_len, 32), "vec": vec, "pe": None, "transformer_options": options},
              {"original_block": original})
        ip = 0.5 * _ip(_reference_query(block, kind, x, vec, 2), *kv["positive"][0])
    expected = attention_out.clone()
    expected[:, -ip.shape[1]:] += ip
    torch.testing.assert_close(seen["attn"], expected)
    assert OVERRIDE_OPTION not in options  # only for this block's call


def test_declared_negative_visual_role_and_zero_weight():
    from emotion_core.visual_prompt.injection import GUIDER_ROLES_OPTION

    patch, block, kv = _flux_patch("xlabs", "double_block")
    img, vec = torch.randn(1, 5, 32), torch.randn(1, 32)
    original = lambda args: {"img": args["img"], "txt": args["txt"]}  # noqa: E731
    args = {"img": img, "txt": torch.randn(1, 3, 32), "vec": vec, "pe": None,
            "transformer_options": {"cond_or_uncond": [2], GUIDER_ROLES_OPTION: {2: "negative_visual"}}}
    with torch.no_grad():
        out = patch(args, {"original_block": original})
        expected = img + 0.5 * _ip(_reference_query(block, "double_block", img, vec, 2), *kv["negative_visual"][0])
    torch.testing.assert_close(out["img"], expected)
    off, _, _ = _flux_patch("xlabs", "double_block", weight=0.0)
    assert off(args, {"original_block": original})["img"] is img


def test_instantx_reads_a_redux_banks_pooled_siglip_centres():
    """A flux-redux bank keeps SigLIP's attention-pooled output per cluster beside the sequences: that is
    InstantX's input, so the bank serves InstantX on Flux (and only the pooled centres are projected)."""
    from emotion_core.bank.retrieval import bank_visual_prompt

    bank = _bank(1152, "flux-redux")
    instantx = FluxIPAdapter.from_state_dict(random_state_dict(flux_adapter_shapes("instantx", 2, 64, tokens=2),
                                                               dtype=torch.float32))
    prompt = bank_visual_prompt(instantx, bank, "awe", None, 1, negative_emotion="fear")
    top = bank.retrieve("awe", None, 1).indices[0]
    expected = instantx.project(bank.visual_centres["awe"][top:top + 1])[0]
    torch.testing.assert_close(prompt.tokens["positive"], expected)
    assert prompt.tokens["negative"].shape == prompt.tokens["negative_visual"].shape == (2, 4096)
    with pytest.raises(InvalidInputError, match="pooled SigLIP centres are 768-d but this InstantX"):
        bank_visual_prompt(instantx, _bank(768, "flux-redux"), "awe", None, 1)
