"""Visual prompts on the SDXL and Flux test models in a real ComfyUI (COMFYUI_PATH), loaded by
ComfyUI's own loaders from the session server's models folder, sampled with the core KSampler:

- SDXL checkpoint: the Visual Prompt Injector (base and plus) at its 70 attn2 blocks;
- Flux transformer: XLabs and InstantX IP-Adapter files through Load Visual Prompt Adapter;
- Flux Redux: the core Load Style Model file, CLIPVisionEncode with the test SigLIP file and the
  Emotion Redux Prompt's bank tokens, both through the core Apply Style Model.

Weight 0 samples exactly as the plain model; a visual prompt changes the sample."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

from emotion_core.testing.assets import TEST_FILES

PROMPT = "a lighthouse on a cliff above the sea"


@pytest.fixture(scope="module")
def models(comfyui_server, comfy_models_dir, pack):
    import comfy.sd
    from helpers.comfy_test_nodes import load_tiny_clip

    root = comfyui_server.models_dir
    return {
        "root": root,
        "sdxl": (comfy.sd.load_checkpoint_guess_config(str(root / TEST_FILES["checkpoint_sdxl"]))[0],
                 load_tiny_clip("sdxl", root)),
        "flux": (comfy.sd.load_diffusion_model(str(root / TEST_FILES["flux_model"])), load_tiny_clip("flux", root)),
    }


def _sample(model, positive, negative, cfg, channels):
    import nodes as comfy_nodes

    latent = {"samples": torch.zeros(1, channels, 8, 8)}
    return comfy_nodes.KSampler().sample(model, 7, 2, cfg, "euler", "simple", positive, negative, latent)[0]["samples"]


def _encode(clip, text, **extras):
    return clip.encode_from_tokens_scheduled(clip.tokenize(text), add_dict=extras)


def _prompt(adapter, seed=0):
    from emotion_core.visual_prompt import build_visual_prompt

    g = torch.Generator().manual_seed(seed)
    layout = adapter.layout
    shape = (1, 257, layout.feature_dim) if layout.variant == "plus" else (1, layout.feature_dim)
    return build_visual_prompt(adapter, lambda images: torch.randn(*shape, generator=g), torch.rand(1, 8, 8, 3),
                               torch.rand(1, 8, 8, 3))


def _inject(model, adapter, weight):
    from emotion_director_pack.nodes.visual_prompt import VisualPromptInjector

    return VisualPromptInjector.execute(model=model, adapter=adapter, weight=weight, weight_schedule="uniform",
                                        start_percent=0.0, end_percent=1.0, visual_prompt=_prompt(adapter)).args[0]


@pytest.mark.parametrize("variant", ["base", "plus"])
def test_injector_on_the_sdxl_checkpoint(models, variant):
    from helpers.visual_prompt_models import adapter_for

    from emotion_core.visual_prompt import comfy_unet_attn2_sites

    model, clip = models["sdxl"]
    assert type(model.model).__name__ == "SDXL"
    sites = comfy_unet_attn2_sites(model.get_model_object("diffusion_model"))
    assert len(sites) == 70 and {s.context_dim for s in sites} == {2048}
    adapter = adapter_for([s.inner_dim for s in sites], variant=variant, cross=2048)
    positive, negative = _encode(clip, PROMPT), _encode(clip, "")
    plain = _sample(model, positive, negative, 4.0, 4)
    assert torch.equal(_sample(_inject(model, adapter, 0.0), positive, negative, 4.0, 4), plain)
    steered = _sample(_inject(model, adapter, 1.0), positive, negative, 4.0, 4)
    assert torch.isfinite(steered).all() and not torch.allclose(steered, plain)


@pytest.mark.parametrize("role", ["adapter_flux_xlabs", "adapter_flux_instantx"])
def test_flux_ip_adapter_files_on_the_flux_model(models, role):
    from emotion_core.visual_prompt import load_adapter

    model, clip = models["flux"]
    adapter = load_adapter(models["root"] / TEST_FILES[role])
    positive, negative = _encode(clip, PROMPT, guidance=3.5), _encode(clip, "", guidance=3.5)
    plain = _sample(model, positive, negative, 1.0, 16)
    assert torch.equal(_sample(_inject(model, adapter, 0.0), positive, negative, 1.0, 16), plain)
    steered = _sample(_inject(model, adapter, 1.0), positive, negative, 1.0, 16)
    assert torch.isfinite(steered).all() and not torch.allclose(steered, plain)


def test_redux_path_with_siglip_images_and_with_the_bank(models, comfy_models_dir):
    import comfy.clip_vision
    import comfy.sd
    import folder_paths
    from emotion_director_pack.nodes.redux import EmotionReduxPrompt

    from nodes import CLIPVisionEncode, StyleModelApply

    model, clip = models["flux"]
    root = models["root"]
    style_model = comfy.sd.load_style_model(str(root / TEST_FILES["redux"]))  # the core Load Style Model
    siglip = comfy.clip_vision.load(str(root / TEST_FILES["siglip_vision"]))
    assert siglip.return_all_hidden_states  # detected as SigLIP (clip_vision_siglip_384.json)
    text, negative = _encode(clip, PROMPT, guidance=3.5), _encode(clip, "", guidance=3.5)
    (encoded,) = CLIPVisionEncode().encode(siglip, torch.rand(1, 32, 32, 3), "center")
    (from_image,) = StyleModelApply().apply_stylemodel(text, style_model, encoded, 1.0, "multiply")
    assert from_image[0][0].shape[1] == text[0][0].shape[1] + 729
    folder_paths.add_model_folder_path("emotion_banks", str(comfy_models_dir / "emotion_banks"))
    bank_out, bank_negative = EmotionReduxPrompt.execute(
        bank_name="test_emotion_bank_flux_redux.safetensors", emotion="awe", text="", top_k=2, combine="weighted",
        negative_emotion="fear", style_model=style_model).args
    (from_bank,) = StyleModelApply().apply_stylemodel(text, style_model, bank_out, 1.0, "multiply")
    (negative_visual,) = StyleModelApply().apply_stylemodel(text, style_model, bank_negative, 1.0, "multiply")
    plain = _sample(model, text, negative, 1.0, 16)
    runs = [_sample(model, c, negative, 1.0, 16) for c in (from_image, from_bank, negative_visual)]
    assert all(torch.isfinite(r).all() for r in runs)
    assert not torch.allclose(runs[0], plain) and not torch.allclose(runs[1], plain)
    assert not torch.allclose(runs[1], runs[2])  # the negative visual branch: same text, another emotion
