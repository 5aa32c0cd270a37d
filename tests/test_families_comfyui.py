"""Emotion Conditioning, the Negative Visual DPO Sampler/Guider and the Emotion Critic Loop on
SD1.5, SDXL, Flux and SD3.5 in a real ComfyUI (COMFYUI_PATH), in-process, with the test models
of the session server's models folder: ComfyUI's own loaders for the diffusion models, and
ComfyUI's own text encoder classes built small for SDXL/Flux/SD3.5 (tests/helpers/comfy_test_nodes:
its loader nodes cannot build shrunken CLIP-G/T5), SD1.5's full CLIP-L from its checkpoint."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

from emotion_core.conditioning import EMOTION_DESCRIPTORS  # noqa: E402
from emotion_core.direction import make_direction  # noqa: E402
from emotion_core.testing.assets import TEST_FILES  # noqa: E402

PROMPT = "a lighthouse on a cliff above the sea"
FAMILIES = ("sd15", "sdxl", "flux", "sd3")
LATENT_CHANNELS = {"sd15": 4, "sdxl": 4, "flux": 16, "sd3": 16}


@pytest.fixture(scope="module")
def models(comfyui_server, comfy_models_dir, pack):
    import comfy.sd

    from helpers.comfy_test_nodes import load_tiny_clip

    root = comfyui_server.models_dir
    sd15, sd15_clip = comfy.sd.load_checkpoint_guess_config(str(root / TEST_FILES["checkpoint"]))[:2]
    sdxl = comfy.sd.load_checkpoint_guess_config(str(root / TEST_FILES["checkpoint_sdxl"]))[0]
    return {
        "sd15": (sd15, sd15_clip),
        "sdxl": (sdxl, load_tiny_clip("sdxl", root)),
        "flux": (comfy.sd.load_diffusion_model(str(root / TEST_FILES["flux_model"])), load_tiny_clip("flux", root)),
        "sd3": (comfy.sd.load_diffusion_model(str(root / TEST_FILES["sd3_model"])), load_tiny_clip("sd3", root)),
    }


def _encode(clip, text: str, **extras) -> list:
    return clip.encode_from_tokens_scheduled(clip.tokenize(text), add_dict=extras)


def _latent(family: str) -> dict:
    return {"samples": torch.zeros(1, LATENT_CHANNELS[family], 8, 8)}


@pytest.mark.parametrize("family", FAMILIES)
def test_emotion_conditioning_steers_every_encoder_of_the_family(models, family):
    from emotion_director_pack.nodes.conditioning import EmotionConditioning

    _, clip = models[family]
    plain = _encode(clip, PROMPT, guidance=3.5)
    (tokens, extras), = EmotionConditioning.execute(direction=make_direction("awe", 1.0), conditioning=plain,
                                                    clip=clip).args[0]
    # the delta, computed here straight from ComfyUI's encoder: E(awe descriptor) - E("")
    descriptor = clip.encode_from_tokens(clip.tokenize(EMOTION_DESCRIPTORS["awe"]), return_pooled=True,
                                         return_dict=True)
    empty = clip.encode_from_tokens(clip.tokenize(""), return_pooled=True, return_dict=True)
    weight = make_direction("awe", 1.0).scaled()[1].item()
    assert tokens.shape == plain[0][0].shape
    torch.testing.assert_close(tokens - plain[0][0], weight * (descriptor["cond"] - empty["cond"]),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(extras["pooled_output"] - plain[0][1]["pooled_output"],
                               weight * (descriptor["pooled_output"] - empty["pooled_output"]), atol=1e-4, rtol=1e-4)
    assert extras["guidance"] == 3.5, "other conditioning keys are kept"
    if family == "sdxl":  # both encoders moved: CLIP-L's 768 and CLIP-G's 1280 features
        moved = (tokens - plain[0][0]).abs().amax(dim=(0, 1))
        assert moved[:768].max() > 0 and moved[768:].max() > 0


@pytest.mark.parametrize("family", ("sdxl", "flux", "sd3"))
def test_steered_conditioning_samples_on_the_family_model(models, family):
    import nodes as comfy_nodes

    from emotion_director_pack.nodes.conditioning import EmotionConditioning

    model, clip = models[family]
    plain = _encode(clip, PROMPT, guidance=3.5)
    steered = EmotionConditioning.execute(direction=make_direction("fear", 2.0), conditioning=plain,
                                          clip=clip).args[0]
    cfg = 1.0 if family == "flux" else 4.0
    negative = _encode(clip, "")
    run = [comfy_nodes.KSampler().sample(model, 5, 2, cfg, "euler", "simple", c, negative, _latent(family))[0]["samples"]
           for c in (plain, steered)]
    assert all(torch.isfinite(r).all() for r in run)
    assert not torch.allclose(run[0], run[1])


def test_conditioning_from_another_family_is_an_error_naming_both(models):
    from emotion_core.errors import InvalidInputError
    from emotion_director_pack.nodes.conditioning import EmotionConditioning

    sdxl_conditioning = _encode(models["sdxl"][1], PROMPT)
    with pytest.raises(InvalidInputError, match=r"conditioning is from SDXL .* CLIP is Flux"):
        EmotionConditioning.execute(direction=make_direction("awe", 1.0), conditioning=sdxl_conditioning,
                                    clip=models["flux"][1])


def _counting(model, calls):
    counted = model.clone()

    def wrapper(apply_model, args):
        calls.append(sorted(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    counted.set_model_unet_function_wrapper(wrapper)
    return counted


def _with_visual_tokens(conditioning: list, seed: int, width: int) -> list:
    """Visual tokens appended to the text tokens, as ComfyUI's StyleModelApply (Flux Redux) does."""
    tokens = torch.randn(1, 8, width, generator=torch.Generator().manual_seed(seed))
    return [[torch.cat((t, tokens), dim=1), dict(extras)] for t, extras in conditioning]


@pytest.mark.parametrize("family,cfg,chunks", [("flux", 1.0, [0, 2]), ("sd3", 4.0, [0, 1, 2])])
def test_dpo_sampler_with_visual_tokens_in_the_conditioning(models, family, cfg, chunks):
    """Flux dev: cfg 1 + its guidance embedding, ε_p + s_v(ε_p − ε_nv) as one call of two rows;
    SD3.5: its CFG, three rows (the negative holds as many tokens, else ComfyUI cannot batch it)."""
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOSampler

    model, clip = models[family]
    text = _encode(clip, PROMPT, guidance=3.5)
    positive, negative_visual = _with_visual_tokens(text, 1, 4096), _with_visual_tokens(text, 2, 4096)
    negative = _with_visual_tokens(_encode(clip, ""), 3, 4096)
    seen = []

    def post(args):  # the guider's result is the formula over the branches' outputs
        expected = args["uncond_denoised"] + cfg * (args["cond_denoised"] - args["uncond_denoised"]) \
            if family != "flux" else args["cond_denoised"]
        expected = expected + 1.5 * (args["cond_denoised"] - args["negative_visual_denoised"])
        seen.append(torch.allclose(args["denoised"], expected, atol=1e-4, rtol=1e-4))
        return args["denoised"]

    calls = []
    counted = _counting(model, calls)
    counted.set_model_sampler_post_cfg_function(post)

    def sample(visual_scale, negative_visual_conditioning):
        return NegativeVisualDPOSampler.execute(
            model=counted, positive=positive, negative=negative, latent_image=_latent(family), seed=3,
            steps=2, cfg=cfg, visual_scale=visual_scale, visual_schedule="constant", visual_weight=0.8,
            sampler_name="euler", scheduler="simple", denoise=1.0,
            negative_visual_conditioning=negative_visual_conditioning).args[0]["samples"]

    guided = sample(1.5, negative_visual)
    assert calls == [chunks] * 2, "one model call per step with every evaluated branch"
    assert seen == [True, True]
    calls.clear()
    seen.clear()
    same_tokens = sample(1.5, positive)  # the negative visual branch equal to the positive: no visual term
    assert torch.isfinite(guided).all() and not torch.allclose(guided, same_tokens)


def test_dpo_sampler_rejects_conditioning_of_another_family(models):
    from emotion_core.errors import InvalidInputError
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOGuider

    sd15_text = _encode(models["sd15"][1], PROMPT)
    with pytest.raises(InvalidInputError, match=r"positive conditioning is from SD1.5 .* the model is Flux"):
        NegativeVisualDPOGuider.execute(model=models["flux"][0], positive=sd15_text, negative=sd15_text, cfg=1.0,
                                        visual_scale=1.0, visual_schedule="constant", visual_weight=0.8,
                                        negative_visual_conditioning=sd15_text)


@pytest.mark.parametrize("family", ("sdxl", "flux", "sd3"))
def test_critic_loop_on_the_family_model(models, family, comfyui_server, comfy_models_dir):
    import comfy.sd
    import comfy.utils

    from emotion_core.critics import load_critic
    from emotion_director_pack.nodes.critic_loop import EmotionCriticLoop

    model, clip = models[family]
    root = comfyui_server.models_dir
    if family == "sdxl":
        vae = comfy.sd.load_checkpoint_guess_config(str(root / TEST_FILES["checkpoint_sdxl"]), output_model=False)[2]
    else:
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(root / TEST_FILES["flux_vae"])))
    critic = load_critic(comfy_models_dir / TEST_FILES["critic_emoeditor"])
    cfg = 1.0 if family == "flux" else 3.0  # SD3.5 uses the 16-channel Flux VAE file (the same layout)
    out = EmotionCriticLoop.execute(
        model=model, positive=_encode(clip, PROMPT, guidance=3.5), negative=_encode(clip, ""), vae=vae,
        critic=critic, target_emotion="awe", seed=3, steps=2, cfg=cfg, sampler_name="euler", scheduler="simple",
        denoise_min=0.5, denoise_max=0.75, ssim_min=0.0, ssim_max=1.0, confidence=1.0, rule="and",
        max_iterations=2, candidates_per_iteration=1, latent=_latent(family), clip=clip)
    best, best_latent = out.args[0], out.args[1]
    assert best.shape == (1, 64, 64, 3) and torch.isfinite(best).all()
    assert best_latent["samples"].shape[1] == LATENT_CHANNELS[family]


def _sdxl_adapter_and_prompts(folder):
    """A random SDXL base IP-Adapter for the test SDXL UNet (70 attn2 layers of width 320, in the public
    ip-adapter_sdxl layout) and two emotions' random visual prompts."""
    from emotion_core.testing.sdxl_flux_checkpoints import SDXL_ATTN2_BLOCKS
    from emotion_core.visual_prompt import VisualPrompt, load_adapter
    from emotion_core.weights import save_safetensors

    g = torch.Generator().manual_seed(0)
    state = {"image_proj.proj.weight": torch.randn(4 * 2048, 1024, generator=g) * 0.03,
             "image_proj.proj.bias": torch.zeros(4 * 2048),
             "image_proj.norm.weight": torch.ones(2048), "image_proj.norm.bias": torch.zeros(2048)}
    layers = [(block, index, width) for block, index, width, depth in SDXL_ATTN2_BLOCKS for _ in range(depth)]
    assert len(layers) == 70
    for n, (_, _, width) in enumerate(layers):
        for name in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * n + 1}.{name}.weight"] = torch.randn(width, 2048, generator=g) * 0.02
    adapter = load_adapter(save_safetensors(state, folder / "sdxl_adapter.safetensors", {}))

    def prompt(source):
        tokens = {"positive": torch.randn(4, 2048, generator=g), "negative": torch.randn(4, 2048, generator=g)}
        return VisualPrompt(tokens, "sdxl", "base", 2048, source)

    return adapter, prompt("awe"), prompt("fear")


def test_dpo_sampler_on_sdxl_with_an_sdxl_adapter(models, tmp_path):
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOSampler

    model, clip = models["sdxl"]
    adapter, awe, fear = _sdxl_adapter_and_prompts(tmp_path)
    calls = []

    def sample(visual_scale):
        return NegativeVisualDPOSampler.execute(
            model=_counting(model, calls), adapter=adapter, positive=_encode(clip, PROMPT), negative=_encode(clip, ""),
            positive_visual_prompt=awe, negative_visual_prompt=fear, latent_image=_latent("sdxl"), seed=3, steps=2,
            cfg=4.0, visual_scale=visual_scale, visual_schedule="constant", visual_weight=0.8, sampler_name="euler",
            scheduler="simple", denoise=1.0).args[0]["samples"]

    guided = sample(2.0)
    assert calls == [[0, 1, 2]] * 2, "three branches in one SDXL call per step"
    plain = sample(0.0)
    assert torch.isfinite(guided).all() and not torch.allclose(guided, plain)


def _adapter_prompt(adapter, seed: int):
    """A visual prompt from random image features in the adapter's feature space (no CLIP vision run)."""
    from emotion_core.visual_prompt import build_visual_prompt

    g = torch.Generator().manual_seed(seed)
    return build_visual_prompt(adapter, lambda images: torch.randn(1, adapter.layout.feature_dim, generator=g),
                               torch.rand(1, 8, 8, 3))


def test_dpo_sampler_on_flux_with_an_xlabs_adapter(models, comfyui_server):
    """The IP-Adapter path on Flux: the node injects both emotions through DiT block patches and runs
    ε_p + s_v(ε_p − ε_nv) at cfg 1 as one call of two rows."""
    from emotion_core.errors import InvalidInputError
    from emotion_core.visual_prompt import load_adapter
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOSampler

    model, clip = models["flux"]
    adapter = load_adapter(comfyui_server.models_dir / TEST_FILES["adapter_flux_xlabs"])
    awe, fear = _adapter_prompt(adapter, 1), _adapter_prompt(adapter, 2)
    text = _encode(clip, PROMPT, guidance=3.5)
    calls = []

    def sample(visual_scale, **overrides):
        args = dict(model=_counting(model, calls), adapter=adapter, positive=text, negative=text,
                    positive_visual_prompt=awe, negative_visual_prompt=fear, latent_image=_latent("flux"), seed=3,
                    steps=2, cfg=1.0, visual_scale=visual_scale, visual_schedule="constant", visual_weight=0.8,
                    sampler_name="euler", scheduler="simple", denoise=1.0)
        return NegativeVisualDPOSampler.execute(**{**args, **overrides}).args[0]["samples"]

    guided = sample(2.0)
    assert calls == [[0, 2]] * 2
    assert torch.isfinite(guided).all() and not torch.allclose(guided, sample(0.0))
    sdxl_model, sdxl_clip = models["sdxl"]
    sdxl_text = _encode(sdxl_clip, PROMPT)
    with pytest.raises(InvalidInputError, match=r"adapter is for Flux .* but the model is an SD1.5/SDXL UNet"):
        sample(2.0, model=sdxl_model, positive=sdxl_text, negative=sdxl_text, latent_image=_latent("sdxl"))


@pytest.mark.parametrize("family,role,prefix,config", [("sdxl", "checkpoint_sdxl", "model.diffusion_model.", "SDXL"),
                                                        ("flux", "flux_model", "", "Flux"),
                                                        ("sd3", "sd3_model", "", "SD3")])
def test_test_models_are_detected_and_fill_every_weight(models, comfyui_server, family, role, prefix, config):
    """ComfyUI detects each file as its family and every weight of the model it builds comes from the
    file with the same shape (nothing left uninitialised, nothing unread)."""
    import comfy.utils

    model = models[family][0]
    assert type(model.model.model_config).__name__ == config
    state = comfy.utils.load_torch_file(str(comfyui_server.models_dir / TEST_FILES[role]), safe_load=True)
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    built = model.model.diffusion_model.state_dict()
    assert set(built) == set(state)
    assert all(built[k].shape == state[k].shape for k in built)
