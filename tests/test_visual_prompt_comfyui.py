"""Visual prompts in a real ComfyUI (COMFYUI_PATH): the tiny SD1.5 checkpoint and the ViT-H
CLIP vision file loaded by ComfyUI's own loaders, injected, sampled with the KSampler node
function and decoded in-process; then the same graph through a real server's /prompt."""

from __future__ import annotations

import logging
import os
import shutil
import time

import pytest
import torch

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

if os.environ.get("COMFYUI_PATH"):
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before the first comfy.model_management import: no GPU here

from emotion_core.testing.adapter_assets import write_test_adapters  # noqa: E402
from emotion_core.testing.assets import TEST_FILES  # noqa: E402

log = logging.getLogger(__name__)

ADAPTERS = {"adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
            "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors"}
RUN_TIMEOUT = 600.0


def _image(seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from emotion_core.testing.checkpoint import write_test_checkpoint

    models = tmp_path_factory.mktemp("vp_models")
    write_test_checkpoint(models, TEST_FILES)
    write_test_adapters(models, ADAPTERS)
    yield models
    shutil.rmtree(models, ignore_errors=True)


@pytest.fixture(scope="module")
def loaded(models_dir, pack):
    import comfy.clip_vision
    import comfy.sd

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(models_dir / TEST_FILES["checkpoint"]), output_vae=True, output_clipvision=False)[:3]
    clip_vision = comfy.clip_vision.load(str(models_dir / TEST_FILES["clip_vision"]))
    from emotion_core.visual_prompt import load_adapter

    adapters = {role: load_adapter(models_dir / name) for role, name in ADAPTERS.items()}
    return model, clip, vae, clip_vision, adapters


def _sample(model, clip, vae, seed=3):
    import nodes as comfy_nodes

    positive = comfy_nodes.CLIPTextEncode().encode(clip, "a quiet harbour at dusk")[0]
    negative = comfy_nodes.CLIPTextEncode().encode(clip, "")[0]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (samples,) = comfy_nodes.KSampler().sample(model, seed, 2, 5.0, "euler", "normal", positive, negative, latent)
    return samples["samples"], vae.decode(samples["samples"])


def test_inject_sample_and_decode_in_process(loaded, pack):
    from emotion_director_pack.nodes.visual_prompt import VisualPromptInjector

    model, clip, vae, clip_vision, adapters = loaded
    seen = []
    start = time.perf_counter()
    patched = VisualPromptInjector.execute(
        model=model, adapter=adapters["adapter_sd15"], weight=1.0, weight_schedule="uniform", start_percent=0.0,
        end_percent=1.0, clip_vision=clip_vision, image=_image(1)).args[0]
    stacked = VisualPromptInjector.execute(
        model=patched, adapter=adapters["adapter_sd15_plus"], weight=0.5, weight_schedule="style", start_percent=0.0,
        end_percent=0.8, clip_vision=clip_vision, image=_image(2), negative_image=_image(3)).args[0]
    injected_in = time.perf_counter() - start
    attn2 = stacked.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert len(attn2) == 7
    for key, patch in list(attn2.items()):
        inner = patch

        def spy(q, k, v, extra, inner=inner):
            seen.append(tuple(extra["cond_or_uncond"]))
            return inner(q, k, v, extra)

        spy.to, spy.models = inner.to, inner.models
        attn2[key] = spy
    start = time.perf_counter()
    latent, images = _sample(stacked, clip, vae)
    sampled_in = time.perf_counter() - start
    plain_latent, _ = _sample(model, clip, vae)
    log.info("injected (2 CLIP encodes + neutral) in %.1f s; 2 steps + decode in %.1f s", injected_in, sampled_in)
    assert images.shape == (1, 64, 64, 3) and torch.isfinite(images).all()
    assert seen and {0, 1} <= {c for call in seen for c in call}, "both CFG branches reach the patches"
    assert not torch.equal(latent, plain_latent), "the visual prompt changes the result"
    assert "patches_replace" not in model.model_options["transformer_options"], "the input model stays unpatched"


def test_workflow_through_the_server(comfyui_server):
    from PIL import Image

    write_test_adapters(comfyui_server.models_dir, ADAPTERS)
    Image.fromarray((_image(5, 96)[0].numpy() * 255).astype("uint8")).save(comfyui_server.input_dir / "vp_ref.png")
    ckpt = TEST_FILES["checkpoint"].split("/", 1)[1]
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a quiet harbour at dusk", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": TEST_FILES["clip_vision"].split("/", 1)[1]}},
        "5": {"class_type": "VisualPromptAdapterLoader",
              "inputs": {"adapter_name": ADAPTERS["adapter_sd15_plus"].split("/", 1)[1]}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "vp_ref.png"}},
        "7": {"class_type": "VisualPromptInjector",
              "inputs": {"model": ["1", 0], "adapter": ["5", 0], "clip_vision": ["4", 0], "image": ["6", 0],
                         "weight": 0.8, "weight_schedule": "uniform", "start_percent": 0.0, "end_percent": 1.0,
                         "image_combine": "concat"}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {"class_type": "KSampler",
              "inputs": {"model": ["7", 0], "seed": 1, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                         "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["8", 0],
                         "denoise": 1.0}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "visual_prompt_e2e"}},
    }
    start = time.perf_counter()
    entry = comfyui_server.run(prompt, timeout=RUN_TIMEOUT)
    log.info("visual prompt workflow ran in %.1f s", time.perf_counter() - start)
    (image,) = entry["outputs"]["11"]["images"]
    assert (comfyui_server.output_dir / image["subfolder"] / image["filename"]).is_file()
