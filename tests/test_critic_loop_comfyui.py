"""Emotion Critic Loop on a real ComfyUI (COMFYUI_PATH): the tiny SD1.5 checkpoint (written
once per session, in the session server's models folder) sampled in-process through the
node, in custom and EmoEditor modes; then a workflow through the server's /prompt."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

from emotion_core.testing.assets import TEST_FILES  # noqa: E402

RUN_TIMEOUT = 600.0


def _image(seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def loaded(comfyui_server, comfy_models_dir, pack, tmp_path_factory):
    import comfy.sd
    import folder_paths

    folder_paths.set_temp_directory(str(tmp_path_factory.mktemp("comfy_temp")))  # previews: never the checkout
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(comfyui_server.models_dir / TEST_FILES["checkpoint"]), output_vae=True, output_clipvision=False)[:3]
    from emotion_core.critics import load_critic

    critic = load_critic(comfy_models_dir / TEST_FILES["critic_emoeditor"])
    return model, clip, vae, critic


def _text(clip, text):
    import nodes as comfy_nodes

    return comfy_nodes.CLIPTextEncode().encode(clip, text)[0]


def test_loop_in_process_custom_mode(loaded):
    from emotion_director_pack.nodes.critic_loop import EmotionCriticLoop

    model, clip, vae, critic = loaded
    start = time.perf_counter()
    out = EmotionCriticLoop.execute(
        model=model, positive=_text(clip, "a harbour at dusk"), negative=_text(clip, ""), vae=vae, critic=critic,
        target_emotion="awe", seed=3, steps=3, cfg=2.0, sampler_name="euler", scheduler="normal", denoise_min=0.5,
        denoise_max=0.75, ssim_min=0.0, ssim_max=1.0, confidence=1.0, rule="and", max_iterations=2,
        candidates_per_iteration=2, source_image=_image(1), clip=clip)
    elapsed = time.perf_counter() - start
    best, best_latent, candidates, text = out.args
    report = json.loads(text)
    assert report["passes"] == 2 and report["stopped"] == "max_iterations"
    assert candidates.shape == (4, 64, 64, 3) and torch.isfinite(candidates).all()
    assert best_latent["samples"].shape == (1, 4, 8, 8)
    assert torch.equal(best, candidates[report["best"]["index"]][None])
    assert out.ui["images"] and out.ui["images"][0]["type"] == "temp"
    assert len(out.ui["emotion_loop"]) == 2
    print(f"2 passes x 2 candidates in {elapsed:.1f} s")


def test_loop_in_process_emoeditor_mode(loaded, comfy_models_dir):
    from emotion_director_pack.nodes.critic_loop import EmotionCriticLoop

    model, clip, vae, critic = loaded
    source = _image(2)
    # The tiny checkpoint is a 4-channel SD1.5 UNet, so no InstructPix2Pix concat image here: the
    # encoder's 77x768 tokens replace the text tokens (what EmoEditor mode does to any positive).
    positive, negative = _text(clip, "a harbour"), _text(clip, "")
    out = EmotionCriticLoop.execute(
        model=model, positive=positive, negative=negative, vae=vae, critic=critic, target_emotion="fear", seed=0,
        steps=4, cfg=5.0, sampler_name="euler", scheduler="normal", denoise_min=0.5, denoise_max=0.6, ssim_min=0.5,
        ssim_max=0.8, confidence=0.6, rule="and", max_iterations=1, candidates_per_iteration=3, mode="EmoEditor",
        source_image=source, emotion_encoder=TEST_FILES["emotion_encoder"].split("/", 1)[1])
    best, best_latent, candidates, text = out.args
    report = json.loads(text)
    assert report["passes"] == 1 and report["settings"]["rule"] == "or" and report["settings"]["keep_limit"] == 30
    assert 0.7 <= report["iterations"][0]["denoise"] <= 0.98
    assert candidates.shape == (1, 224, 224, 3) and best.shape == (1, 224, 224, 3), "EmoEditor works at 224x224"
    assert best_latent["samples"].shape == (1, 4, 28, 28)
    if report["best"]["index"] is None:  # nothing accepted: the source, as EmoEditor returns it
        from emotion_core.images import pil_resize

        assert torch.equal(best, pil_resize(source, 224, 224))


def test_loop_workflow_through_the_server(comfyui_server):
    from PIL import Image

    Image.fromarray((_image(5)[0].numpy() * 255).astype("uint8")).save(comfyui_server.input_dir / "loop_src.png")
    ckpt = TEST_FILES["checkpoint"].split("/", 1)[1]
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a quiet harbour", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "loop_src.png"}},
        "5": {"class_type": "EmotionCriticLoader",
              "inputs": {"critic_name": TEST_FILES["critic_emoeditor"].split("/", 1)[1]}},
        "6": {"class_type": "EmotionCriticLoop",
              "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2],
                         "critic": ["5", 0], "source_image": ["4", 0], "target_emotion": "contentment", "seed": 7,
                         "steps": 3, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
                         "denoise_min": 0.5, "denoise_max": 0.7, "ssim_min": 0.5, "ssim_max": 0.8,
                         "confidence": 0.6, "rule": "and", "max_iterations": 2, "candidates_per_iteration": 2,
                         "mode": "custom"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "critic_loop_best"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 2], "filename_prefix": "critic_loop_all"}},
    }
    entry = comfyui_server.run(prompt, timeout=RUN_TIMEOUT)
    outputs = entry["outputs"]
    assert len(outputs["7"]["images"]) == 1 and 1 <= len(outputs["8"]["images"]) <= 4
    assert outputs["6"]["emotion_loop"] and outputs["6"]["images"]
