"""Visual prompt adapters: layout detection on real-shaped state dicts, loading
(.safetensors and nested weights-only .bin), projections against independent
reference maths, and building visual prompts."""

import math

import pytest
import torch

from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.testing.adapter_assets import (
    SD15_LAYER_DIMS,
    adapter_shapes,
    random_state_dict,
    real_adapter_shapes,
    write_test_adapters,
)
from emotion_core.visual_prompt import (
    NEGATIVE,
    POSITIVE,
    VisualPrompt,
    VisualPromptAdapter,
    build_visual_prompt,
    detect_layout,
    load_adapter,
    neutral_image,
)

TEST_NAMES = {"adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
              "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors"}


def small_adapter(variant="base", seed=0, layer_dims=(32, 64, 32), tokens=None):
    """A tiny adapter built directly from a layout (detection needs the real 768/2048 widths)."""
    shapes = adapter_shapes(variant, 768, layer_dims, resampler_dim=128, resampler_heads=2, depth=2, tokens=tokens)
    return VisualPromptAdapter.from_state_dict(random_state_dict(shapes, seed=seed, dtype=torch.float32))


@pytest.mark.parametrize("family,variant,tokens,cross,feature,layers", [
    ("sd15", "base", 4, 768, 1024, 16),
    ("sd15", "plus", 16, 768, 1280, 16),
    ("sdxl", "base", 4, 2048, 1024, 70),
    ("sdxl", "plus", 16, 2048, 1280, 70),
])
def test_detects_public_layouts_from_real_shapes(family, variant, tokens, cross, feature, layers):
    state = random_state_dict(real_adapter_shapes(family, variant), device="meta")
    layout = detect_layout(state)
    assert (layout.family, layout.variant, layout.tokens, layout.cross_dim, layout.feature_dim) == \
        (family, variant, tokens, cross, feature)
    assert len(layout.layer_dims) == layers and layout.standard_depth
    if variant == "plus":
        expected_heads = 12 if family == "sd15" else 20
        assert (layout.resampler.depth, layout.resampler.heads, layout.resampler.ff_mult) == (4, expected_heads, 4)
    assert layout.feature_name == ("image_embeds" if variant == "base" else "penultimate_hidden_states")


def test_real_sdxl_module_builds_on_meta():
    state = random_state_dict(real_adapter_shapes("sdxl", "plus"), device="meta")
    with torch.device("meta"):
        adapter = VisualPromptAdapter(detect_layout(state))
    missing, unexpected = adapter.load_state_dict(state, strict=False, assign=True)
    assert not missing and not unexpected


@pytest.mark.parametrize("mutate,message", [
    (lambda s: s.pop("image_proj.proj.weight"), "no image_proj"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("ip_adapter.")], "no ip_adapter"),
    (lambda s: s.pop("ip_adapter.3.to_v_ip.weight"), "layer 3"),
    (lambda s: s.update({"ip_adapter.4.to_k_ip.weight": torch.empty(320, 768, device="meta")}), "numbered"),
    (lambda s: s.update({"image_proj.norm.weight": torch.empty(1024, device="meta")}), "1024 wide"),
    (lambda s: s.update({"ip_adapter.1.extra": torch.empty(1, device="meta")}), "unexpected adapter key"),
])
def test_unknown_layouts_list_what_was_found(mutate, message):
    state = random_state_dict(real_adapter_shapes("sd15", "base"), device="meta")
    mutate(state)
    with pytest.raises(ModelFormatError, match=message) as info:
        detect_layout(state)
    assert "Found:" in str(info.value) and "tensors" in str(info.value)


def test_mixed_family_is_refused():
    shapes = adapter_shapes("base", 768, [1280] * 70)  # SD1.5 token width, SDXL depth
    with pytest.raises(ModelFormatError, match="768-wide tokens .sd15. but 70"):
        detect_layout(random_state_dict(shapes, device="meta"))


def test_face_and_other_layouts_are_refused():
    state = {"image_proj.proj.0.weight": torch.empty(1024, 1280, device="meta"),
             "ip_adapter.1.to_k_ip.weight": torch.empty(320, 768, device="meta")}
    with pytest.raises(ModelFormatError, match="image_proj.proj.0.weight"):
        detect_layout(state)


@pytest.fixture(scope="module")
def real_sd15_state():
    return random_state_dict(real_adapter_shapes("sd15", "base"), seed=3)


def test_loads_real_shaped_safetensors_and_nested_bin(tmp_path, real_sd15_state):
    from emotion_core.weights import save_safetensors

    path = save_safetensors(real_sd15_state, tmp_path / "ip-adapter_sd15.safetensors")
    adapter = load_adapter(path)
    assert adapter.layout.layer_dims == SD15_LAYER_DIMS
    assert adapter.ip_adapter["31"].to_k_ip.weight.dtype == torch.float16  # K/V keep the file dtype
    assert adapter.image_proj.proj.weight.dtype == torch.float32
    nested = {"image_proj": {k[len("image_proj."):]: v for k, v in real_sd15_state.items() if k.startswith("image_proj.")},
              "ip_adapter": {k[len("ip_adapter."):]: v for k, v in real_sd15_state.items() if k.startswith("ip_adapter.")}}
    torch.save(nested, tmp_path / "ip-adapter_sd15.bin")
    from_bin = load_adapter(tmp_path / "ip-adapter_sd15.bin")
    for key, value in adapter.state_dict().items():
        assert torch.equal(value, from_bin.state_dict()[key]), key


def test_bin_needing_full_pickle_is_refused(tmp_path):
    from emotion_core.errors import UnsafeCheckpointError

    import argparse

    torch.save({"image_proj": argparse.Namespace(code="not allowed by weights_only")}, tmp_path / "evil.bin")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_adapter(tmp_path / "evil.bin")


def test_bad_file_names_the_file(tmp_path):
    from emotion_core.weights import save_safetensors

    path = save_safetensors({"foo": torch.zeros(2)}, tmp_path / "not_an_adapter.safetensors")
    with pytest.raises(ModelFormatError, match="not_an_adapter.safetensors: not a supported IP-Adapter layout"):
        load_adapter(path)


def test_base_projection_matches_reference():
    adapter = small_adapter("base")
    state = adapter.state_dict()
    embeds = torch.randn(3, 1024, generator=torch.Generator().manual_seed(1))
    raw = (embeds @ state["image_proj.proj.weight"].T + state["image_proj.proj.bias"]).reshape(3, 4, 768)
    mean, var = raw.mean(-1, keepdim=True), raw.var(-1, unbiased=False, keepdim=True)
    expected = (raw - mean) / torch.sqrt(var + 1e-5) * state["image_proj.norm.weight"] + state["image_proj.norm.bias"]
    torch.testing.assert_close(adapter.project(embeds), expected, atol=1e-4, rtol=1e-4)


def _layer_norm(x, state, prefix):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]


def _reference_resampler(state, hidden, heads):
    """IP-Adapter plus maths, written out: queries attend to [features; queries] with the
    q and k each scaled by dim_head**-0.25."""
    x = hidden @ state["image_proj.proj_in.weight"].T + state["image_proj.proj_in.bias"]
    latents = state["image_proj.latents"].repeat(hidden.shape[0], 1, 1)
    depth = len({k.split(".")[2] for k in state if k.startswith("image_proj.layers.")})
    for i in range(depth):
        p = f"image_proj.layers.{i}."
        xn, ln = _layer_norm(x, state, p + "0.norm1"), _layer_norm(latents, state, p + "0.norm2")
        q = ln @ state[p + "0.to_q.weight"].T
        kv = torch.cat([xn, ln], dim=1) @ state[p + "0.to_kv.weight"].T
        k, v = kv.chunk(2, dim=-1)
        b, n, inner = q.shape
        d = inner // heads
        split = lambda t: t.reshape(b, -1, heads, d).permute(0, 2, 1, 3)  # noqa: E731
        scale = d ** -0.25
        weights = torch.softmax((split(q) * scale) @ (split(k) * scale).transpose(-1, -2), dim=-1)
        attended = (weights @ split(v)).permute(0, 2, 1, 3).reshape(b, n, inner)
        latents = attended @ state[p + "0.to_out.weight"].T + latents
        h = _layer_norm(latents, state, p + "1.0") @ state[p + "1.1.weight"].T
        h = torch.nn.functional.gelu(h) @ state[p + "1.3.weight"].T
        latents = h + latents
    out = latents @ state["image_proj.proj_out.weight"].T + state["image_proj.proj_out.bias"]
    return _layer_norm(out, state, "image_proj.norm_out")


def test_plus_projection_matches_reference():
    adapter = small_adapter("plus")
    assert adapter.layout.resampler.heads == 2 and adapter.layout.tokens == 16
    hidden = torch.randn(2, 257, 1280, generator=torch.Generator().manual_seed(2))
    # the maths in float64 on both sides (well-conditioned: rounding is ~1e-15, any formula
    # difference is far above the tolerance); a float32 comparison at 1e-4 was flaky, since
    # the layer norms amplify float32 rounding of 1280-wide sums to ~1e-4 of the output
    state64 = {name: tensor.double() for name, tensor in adapter.state_dict().items()}
    expected = _reference_resampler(state64, hidden.double(), heads=2)
    torch.testing.assert_close(adapter.image_proj.double()(hidden.double()), expected, atol=1e-10, rtol=1e-10)
    # the shipped float32 path, relative to the output scale (seen: 1.6e-5 of it)
    adapter.image_proj.float()
    scale = float(expected.abs().max())
    torch.testing.assert_close(adapter.project(hidden).double(), expected, atol=1e-4 * scale, rtol=0)


def test_layer_kv_is_the_tokens_through_each_layer():
    adapter = small_adapter("base")
    tokens = torch.randn(8, 768)
    kv = adapter.layer_kv(tokens)
    assert [k.shape for k, _ in kv] == [(8, 32), (8, 64), (8, 32)]
    torch.testing.assert_close(kv[1][1], tokens @ adapter.ip_adapter["3"].to_v_ip.weight.T)


def test_clip_width_mismatch_is_a_clear_error():
    adapter = small_adapter("base")
    with pytest.raises(InvalidInputError, match=r"1024-d CLIP vision image_embeds .*gives 1280-d"):
        adapter.project(torch.zeros(1, 1280))
    plus = small_adapter("plus")
    with pytest.raises(InvalidInputError, match="1280-d CLIP vision penultimate_hidden_states"):
        plus.project(torch.zeros(1, 1024))  # pooled embeds where hidden states are needed


def _fake_encoder(width, pooled):
    def encode(images):
        assert images.ndim == 4 and images.shape[-1] == 3
        base = images.mean(dim=(1, 2, 3)).view(-1, 1)
        return base.expand(-1, width).clone() if pooled else base.view(-1, 1, 1).expand(-1, 257, width).clone()
    return encode


@pytest.mark.parametrize("combine,tokens", [("concat", 12), ("average", 4)])
def test_build_visual_prompt_base(combine, tokens):
    adapter = small_adapter("base")
    images = torch.rand(3, 16, 16, 3)
    prompt = build_visual_prompt(adapter, _fake_encoder(1024, True), images, combine=combine)
    assert prompt.tokens[POSITIVE].shape == (tokens, 768)
    # no negative image: the tokens of a zero embedding, once per image (same count as positive)
    zero = adapter.project(torch.zeros(1, 1024))[0]
    assert prompt.tokens[NEGATIVE].shape == (tokens, 768)
    torch.testing.assert_close(prompt.tokens[NEGATIVE][:4], zero)
    if combine == "average":
        mean = adapter.project(_fake_encoder(1024, True)(images).mean(0, keepdim=True))[0]
        torch.testing.assert_close(prompt.tokens[POSITIVE], mean)


def test_build_visual_prompt_plus_uses_neutral_image_and_negative_images():
    adapter = small_adapter("plus")
    seen = []
    encoder = _fake_encoder(1280, False)

    def encode(images):
        seen.append(images)
        return encoder(images)

    prompt = build_visual_prompt(adapter, encode, torch.rand(2, 8, 8, 3))
    torch.testing.assert_close(seen[-1], neutral_image())
    assert prompt.tokens[NEGATIVE].shape == prompt.tokens[POSITIVE].shape == (32, 768)
    with_negative = build_visual_prompt(adapter, encode, torch.rand(2, 8, 8, 3), torch.zeros(1, 8, 8, 3))
    assert with_negative.tokens[NEGATIVE].shape == (16, 768)


def test_neutral_image_is_zero_after_clip_normalisation():
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    assert torch.allclose(neutral_image()[0, 100, 100], mean)
    assert neutral_image().shape == (1, 224, 224, 3)


@pytest.mark.parametrize("images,message", [
    (torch.zeros(0, 8, 8, 3), "empty batch"),
    (torch.zeros(8, 8, 3), "IMAGE batch"),
])
def test_bad_image_batches(images, message):
    with pytest.raises(InvalidInputError, match=message):
        build_visual_prompt(small_adapter(), _fake_encoder(1024, True), images)


def test_visual_prompt_validates_roles_and_adapter():
    tokens = {POSITIVE: torch.zeros(4, 768), NEGATIVE: torch.zeros(4, 768)}
    with pytest.raises(InvalidInputError, match="no 'negative'"):
        VisualPrompt({POSITIVE: tokens[POSITIVE]}, "sd15", "base", 768)
    with pytest.raises(InvalidInputError, match="shape"):
        VisualPrompt({**tokens, "contrast": torch.zeros(4, 2048)}, "sd15", "base", 768)
    prompt = VisualPrompt(tokens, "sd15", "plus", 768)
    with pytest.raises(InvalidInputError, match="made for a sd15 plus adapter"):
        prompt.check_adapter(small_adapter("base").layout)


def test_written_test_adapters_fit_the_tiny_checkpoint(tmp_path):
    written = write_test_adapters(tmp_path, TEST_NAMES, seed=0)
    base, plus = load_adapter(written["adapter_sd15"]), load_adapter(written["adapter_sd15_plus"])
    assert (base.layout.family, base.layout.variant, plus.layout.variant) == ("sd15", "base", "plus")
    assert base.layout.layer_dims == (320, 640, 640, 640, 320, 320, 640) == plus.layout.layer_dims
    assert not base.layout.standard_depth
    again = write_test_adapters(tmp_path / "again", TEST_NAMES, seed=0)
    assert again["adapter_sd15"].read_bytes() == written["adapter_sd15"].read_bytes()
    tokens = plus.project(torch.randn(1, 257, 1280))
    assert torch.isfinite(tokens).all() and math.isclose(float(tokens.std()), 1.0, rel_tol=0.1)
