"""Prompt banks in a real ComfyUI (COMFYUI_PATH): a bank prompt's negative emotion reaches the
Negative Visual DPO Sampler's negative visual branch (exactly as a separately connected negative
visual prompt would), and a plus (Resampler) adapter driven by the ip-adapter-plus test bank
runs the shipped emotion_director_txt2img graph through the server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

if os.environ.get("COMFYUI_PATH"):
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before the first comfy.model_management import: no GPU here

import torch  # noqa: E402

from emotion_core.testing.assets import TEST_FILES  # noqa: E402

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "api" / "emotion_director_txt2img.json"


def _name(role: str) -> str:
    return TEST_FILES[role].split("/", 1)[1]


def _find(graph: dict, class_type: str) -> list[str]:
    return [node for node, spec in graph.items() if spec["class_type"] == class_type]


def test_bank_negative_emotion_drives_the_negative_visual_branch(pack, comfy_models_dir):
    import comfy.sd

    from emotion_core.bank.retrieval import bank_visual_prompt
    from emotion_core.bank.store import load_bank
    from emotion_core.testing.checkpoint import SD15_LAYOUT, TensorShapes, generator_for, unet_shapes
    from emotion_core.visual_prompt import load_adapter
    from emotion_director_pack.nodes.negative_visual_guidance import NegativeVisualDPOSampler

    shapes = TensorShapes()  # only the tiny SD1.5 UNet: the sampler needs no CLIP or VAE here
    unet_shapes(shapes, SD15_LAYOUT)
    model = comfy.sd.load_diffusion_model_state_dict(shapes.build(generator_for(0, "checkpoint")))
    adapter = load_adapter(comfy_models_dir / TEST_FILES["adapter_sd15"])
    bank = load_bank(comfy_models_dir / TEST_FILES["bank"])
    carried = bank_visual_prompt(adapter, bank, "awe", None, 2, negative_emotion="fear")
    awe, fear = (bank_visual_prompt(adapter, bank, e, None, 2) for e in ("awe", "fear"))
    g = torch.Generator().manual_seed(0)
    text, empty = [[torch.randn(1, 77, 768, generator=g), {}]], [[torch.randn(1, 77, 768, generator=g) * 0.1, {}]]

    def sample(positive_visual, negative_visual=None):
        return NegativeVisualDPOSampler.execute(
            model=model, adapter=adapter, positive=text, negative=empty, positive_visual_prompt=positive_visual,
            negative_visual_prompt=negative_visual, latent_image={"samples": torch.zeros(1, 4, 8, 8)}, seed=7, steps=2,
            cfg=5.0, visual_scale=2.0, visual_schedule="constant", visual_weight=0.8, sampler_name="euler",
            scheduler="normal", denoise=1.0).args[0]["samples"]

    from_bank = sample(carried)
    assert torch.equal(from_bank, sample(awe, fear)), "the same as fear's prompt wired to negative_visual_prompt"
    assert not torch.allclose(from_bank, sample(awe), atol=1e-4), "without it the visual term is off"


def test_plus_adapter_from_a_bank_in_the_txt2img_workflow(comfyui_server):
    graph = json.loads(WORKFLOW.read_text())
    (adapter,) = _find(graph, "VisualPromptAdapterLoader")
    graph[adapter]["inputs"]["adapter_name"] = _name("adapter_sd15_plus")
    (sampler,) = _find(graph, "NegativeVisualDPOSampler")
    positive_bank = graph[sampler]["inputs"]["positive_visual_prompt"][0]
    negative_bank = graph[sampler]["inputs"].pop("negative_visual_prompt")[0]
    del graph[negative_bank]  # the positive bank prompt carries the negative emotion's tokens itself
    graph[positive_bank]["inputs"].update(bank_name=_name("bank_plus"), negative_emotion="sadness")
    graph[sampler]["inputs"].update(steps=2)
    for latent in _find(graph, "EmptyLatentImage"):
        graph[latent]["inputs"].update(width=64, height=64)
    (decode,) = _find(graph, "VAEDecode")
    keep = {"CheckpointLoaderSimple", "AgentPromptRewriter", "CLIPTextEncode", "VisualPromptAdapterLoader",
            "EmotionVisualPromptBank", "EmptyLatentImage", "NegativeVisualDPOSampler", "VAEDecode"}
    graph = {node: spec for node, spec in graph.items() if spec["class_type"] in keep}
    graph["90"] = {"class_type": "SaveImage", "inputs": {"images": [decode, 0], "filename_prefix": "bank_plus_e2e"}}
    entry = comfyui_server.run(graph, timeout=900)
    (image,) = entry["outputs"]["90"]["images"]
    assert (comfyui_server.output_dir / image["subfolder"] / image["filename"]).is_file()
    assert not comfyui_server.log_lines("no negative_visual_prompt connected"), "the bank's negative tokens are used"
