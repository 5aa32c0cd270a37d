"""Negative Visual DPO sampler and guider in a real ComfyUI (COMFYUI_PATH), in-process: the tiny
SD1.5 UNet (the test checkpoint's UNet, loaded by ComfyUI's own loader), random text
conditioning and random visual prompt tokens for the test adapter."""

from __future__ import annotations

import logging
import os

import pytest
import torch

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

from emotion_core.testing.adapter_assets import write_test_adapters  # noqa: E402

ADAPTER = {"adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
           "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors"}
STEPS, CFG = 3, 5.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory, pack):
    import comfy.sd

    # ComfyUI detects an SD1.5 UNet from these key shapes (see emotion_core.testing.checkpoint);
    # only the UNet is built: the sampler needs no CLIP or VAE here.
    from emotion_core.testing.checkpoint import SD15_LAYOUT, TensorShapes, generator_for, unet_shapes
    from emotion_core.visual_prompt import VisualPrompt, load_adapter

    shapes = TensorShapes()
    unet_shapes(shapes, SD15_LAYOUT)
    model = comfy.sd.load_diffusion_model_state_dict(shapes.build(generator_for(0, "checkpoint")))
    models = tmp_path_factory.mktemp("dpo_models")
    adapter = load_adapter(write_test_adapters(models, ADAPTER)["adapter_sd15"])
    g = torch.Generator().manual_seed(0)

    def prompt(source):
        tokens = {"positive": torch.randn(4, 768, generator=g), "negative": torch.randn(4, 768, generator=g)}
        return VisualPrompt(tokens, "sd15", "base", 768, source)

    text = [[torch.randn(1, 77, 768, generator=g), {}]]
    empty = [[torch.randn(1, 77, 768, generator=g) * 0.1, {}]]
    return model, adapter, prompt("awe"), prompt("fear"), text, empty


def _latent():
    return {"samples": torch.zeros(1, 4, 8, 8)}


def _dpo(setup, model=None, visual_scale=1.5, negative=True, schedule="constant", sampler="euler", **kwargs):
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOSampler

    base, adapter, awe, fear, text, empty = setup
    args = dict(model=model or base, adapter=adapter, positive=text, negative=empty, positive_visual_prompt=awe,
                latent_image=_latent(), seed=7, steps=STEPS, cfg=CFG, visual_scale=visual_scale,
                visual_schedule=schedule, visual_weight=0.8, sampler_name=sampler, scheduler="normal", denoise=1.0,
                negative_visual_prompt=fear if negative else None)
    args.update(kwargs)
    return NegativeVisualDPOSampler.execute(**args).args[0]["samples"]


def _counting(model, calls):
    counted = model.clone()

    def wrapper(apply_model, args):
        calls.append(list(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    counted.set_model_unet_function_wrapper(wrapper)
    return counted


def test_one_model_call_per_step_with_three_chunks(setup):
    calls = []
    out = _dpo(setup, model=_counting(setup[0], calls))
    assert len(calls) == STEPS, "exactly one model call per step"
    assert all(sorted(chunks) == [0, 1, 2] for chunks in calls), calls
    assert torch.isfinite(out).all()


def test_zero_visual_scale_equals_standard_cfg_sampling(setup):
    import nodes as comfy_nodes

    from emotion_director_pack.nodes.visual_prompt import VisualPromptInjector

    model, adapter, awe, _, text, empty = setup
    injected = VisualPromptInjector.execute(model=model, adapter=adapter, weight=0.8, weight_schedule="uniform",
                                            start_percent=0.0, end_percent=1.0, visual_prompt=awe).args[0]
    (reference,) = comfy_nodes.KSampler().sample(injected, 7, STEPS, CFG, "euler", "normal", text, empty, _latent())
    calls = []
    two_branch = _dpo(setup, model=_counting(model, calls), visual_scale=0.0)
    assert torch.equal(two_branch, reference["samples"])
    assert all(sorted(chunks) == [0, 1] for chunks in calls), "a zero-weight branch is not evaluated"
    forced = model.clone()
    forced.model_options["disable_cfg1_optimization"] = True
    calls = []
    three_branch = _dpo(setup, model=_counting(forced, calls), visual_scale=0.0)
    assert all(sorted(chunks) == [0, 1, 2] for chunks in calls)
    torch.testing.assert_close(three_branch, reference["samples"], atol=1e-4, rtol=1e-4)


def test_negative_visual_prompt_changes_the_result_and_missing_one_falls_back(setup, caplog):
    plain = _dpo(setup, visual_scale=0.0)
    guided = _dpo(setup, visual_scale=2.0)
    assert not torch.allclose(guided, plain, atol=1e-3)
    with caplog.at_level(logging.WARNING):
        fallback = _dpo(setup, visual_scale=2.0, negative=False)
    assert torch.equal(fallback, plain)
    assert "no negative_visual_prompt" in caplog.text


def test_schedule_skips_the_branch_where_it_is_zero(setup):
    calls = []
    _dpo(setup, model=_counting(setup[0], calls), schedule="linear_ramp")
    assert [sorted(c) for c in calls] == [[0, 1], [0, 1, 2], [0, 1, 2]]
    calls = []
    _dpo(setup, model=_counting(setup[0], calls), schedule="linear_decay")
    assert [sorted(c) for c in calls] == [[0, 1, 2], [0, 1, 2], [0, 1]]


def test_pre_and_post_cfg_hooks_run(setup):
    model = setup[0].clone()
    seen = {"pre": [], "post": []}

    def pre(args):
        seen["pre"].append(len(args["conds_out"]))
        return args["conds_out"]

    def post(args):
        seen["post"].append(args["visual_scale"])
        return args["denoised"] * 0.0  # visible in the output

    model.set_model_sampler_pre_cfg_function(pre)
    model.set_model_sampler_post_cfg_function(post)
    out = _dpo(setup, model=model)
    assert seen["pre"] == [3] * STEPS and seen["post"] == [1.5] * STEPS
    assert out.abs().max() < 1e-5, "the post-cfg result is what the sampler steps with"


def test_guider_node_with_sampler_custom_advanced(setup):
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import SamplerCustomAdvanced

    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOGuider

    model, adapter, awe, fear, text, empty = setup
    guider = NegativeVisualDPOGuider.execute(model=model, adapter=adapter, positive=text, negative=empty,
                                             positive_visual_prompt=awe, cfg=CFG, visual_scale=1.5,
                                             visual_schedule="constant", visual_weight=0.8,
                                             negative_visual_prompt=fear).args[0]
    sigmas = comfy.samplers.KSampler(model, steps=STEPS, device="cpu", sampler="euler", scheduler="normal").sigmas

    class Noise:
        seed = 7

        def generate_noise(self, latent):
            import comfy.sample

            return comfy.sample.prepare_noise(latent["samples"], self.seed)

    output, _ = SamplerCustomAdvanced().sample(Noise(), guider, comfy.samplers.sampler_object("euler"), sigmas,
                                               _latent())
    torch.testing.assert_close(output["samples"], _dpo(setup), atol=1e-5, rtol=1e-5)


def test_bad_input(setup, tmp_path):
    from emotion_core.errors import InvalidInputError

    model, adapter, awe, fear, text, empty = setup
    two = [[torch.cat([text[0][0]] * 2), {}]]
    with pytest.raises(InvalidInputError, match="batch 2"):
        _dpo(setup, positive=two, latent_image={"samples": torch.zeros(3, 4, 8, 8)})
    with pytest.raises(InvalidInputError, match="visual_scale must be between"):
        _dpo(setup, visual_scale=-1.0)
    with pytest.raises(InvalidInputError, match="visual prompt was made for"):
        _dpo(setup, adapter=plus_adapter(tmp_path))


def plus_adapter(folder):
    from emotion_core.visual_prompt import load_adapter

    return load_adapter(write_test_adapters(folder, ADAPTER)["adapter_sd15_plus"])
