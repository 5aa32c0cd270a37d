"""End-to-end against a real ComfyUI server (COMFYUI_PATH): the pack's nodes as the
frontend sees them in /object_info, and a full text-to-image workflow through /prompt."""

from __future__ import annotations

import logging
import os
import time
from pathlib import PurePosixPath

import numpy as np
import pytest
from PIL import Image

from helpers.comfyui_server import PACK_DIR_NAME, ComfyUIError
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.assets import TEST_FILES

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

PACK_NODES = {
    "EmotionCriticLoader": "Load Emotion Critic",
    "EmotionDirection": "Emotion Direction",
    "EmotionConditioning": "Emotion Conditioning",
    "VisualPromptAdapterLoader": "Load Visual Prompt Adapter",
    "VisualPromptInjector": "Visual Prompt Injector",
    "EmotionVisualPromptBank": "Emotion Visual Prompt Bank",
    "AgentPromptRewriter": "Agent Prompt Rewriter",
    "NegativeVisualDPOSampler": "Negative Visual DPO Sampler",
    "NegativeVisualDPOGuider": "Negative Visual DPO Guider",
    "EmotionPreferenceCollector": "Save Emotion Preference Pair",
    "EmotionCriticLoop": "Emotion Critic Loop",
    "EmotionSaveImage": "Save Emotion Image",
}
CORE_NODES = (
    "CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage",
)
SOURCE_IMAGE = "emotion_e2e_source.png"
RUN_TIMEOUT = 600.0


def _test_file_name(role: str) -> str:
    """A test model's name as ComfyUI lists it: relative to its model folder."""
    return str(PurePosixPath(TEST_FILES[role]).relative_to(PurePosixPath(TEST_FILES[role]).parts[0]))


def _combo_options(spec: list) -> list:
    """Combo values from an /object_info input spec: V1 style ``[[...], {...}]`` or ``["COMBO", {"options": [...]}]``."""
    if isinstance(spec[0], list):
        return spec[0]
    return spec[1].get("options", []) if len(spec) > 1 else []


@pytest.fixture(scope="module")
def object_info(comfyui_server):
    return comfyui_server.get_json("/object_info")


@pytest.fixture(scope="module")
def source_image(comfyui_server) -> str:
    """A deterministic gradient PNG in the server's input dir, for LoadImage."""
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 96, np.uint8)], -1)
    Image.fromarray(pixels, "RGB").save(comfyui_server.input_dir / SOURCE_IMAGE)
    return SOURCE_IMAGE


def _workflow(image_name: str, blend: str = "") -> dict:
    """Checkpoint -> text -> emotion direction (critic on a source image) -> emotion conditioning -> sample -> save."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": _test_file_name("checkpoint")}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a quiet harbour at dusk", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "5": {"class_type": "EmotionCriticLoader", "inputs": {"critic_name": _test_file_name("critic_emoeditor")}},
        "6": {
            "class_type": "EmotionDirection",
            "inputs": {
                "target_emotion": "awe", "strength": 1.0, "blend": blend,
                "source_image": ["4", 0], "critic": ["5", 0],
            },
        },
        "7": {
            "class_type": "EmotionConditioning",
            "inputs": {"direction": ["6", 0], "clip": ["1", 1], "conditioning": ["2", 0], "emotion_encoder": "none"},
        },
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0], "seed": 1, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
                "positive": ["7", 0], "negative": ["3", 0], "latent_image": ["8", 0], "denoise": 1.0,
            },
        },
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "emotion_e2e"}},
    }


def test_server_lists_core_nodes(object_info):
    missing = [node for node in CORE_NODES if node not in object_info]
    assert not missing, f"core nodes missing from /object_info: {missing}"


def _pack_node_info(server, object_info: dict, node_id: str) -> dict:
    """The node's /object_info entry; if missing, fail with the pack's import errors from the server log."""
    if node_id not in object_info:
        pytest.fail(
            f"{node_id} is not in /object_info; the server log about the pack:\n"
            + "\n".join(server.log_lines(PACK_DIR_NAME))
        )
    return object_info[node_id]


@pytest.mark.parametrize("node_id", sorted(PACK_NODES))
def test_pack_node_is_registered_with_help(comfyui_server, object_info, node_id):
    info = _pack_node_info(comfyui_server, object_info, node_id)
    assert info["display_name"] == PACK_NODES[node_id]
    assert info.get("description", "").strip(), f"{node_id} has no description"
    inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    assert inputs, f"{node_id} lists no inputs"
    untipped = [name for name, spec in inputs.items() if not (len(spec) > 1 and spec[1].get("tooltip"))]
    assert not untipped, f"{node_id} inputs without a tooltip: {untipped}"


def test_critic_combo_lists_test_critics(comfyui_server, object_info):
    spec = _pack_node_info(comfyui_server, object_info, "EmotionCriticLoader")["input"]["required"]["critic_name"]
    expected = {_test_file_name(role) for role in TEST_FILES if role.startswith("critic_")}
    assert expected <= set(_combo_options(spec))


def test_emotion_workflow_runs_and_saves_an_image(comfyui_server, source_image):
    start = time.perf_counter()
    entry = comfyui_server.run(_workflow(source_image), timeout=RUN_TIMEOUT)
    log.info("emotion workflow ran in %.1f s", time.perf_counter() - start)
    images = entry["outputs"]["11"]["images"]
    assert len(images) == 1 and images[0]["type"] == "output"
    saved = comfyui_server.output_dir / images[0]["subfolder"] / images[0]["filename"]
    assert saved.is_file()
    with Image.open(saved) as image:
        assert image.size == (64, 64)


def test_unknown_blend_emotion_fails_clearly_and_server_survives(comfyui_server, source_image):
    with pytest.raises(ComfyUIError) as failure:
        comfyui_server.run(_workflow(source_image, blend="joy:1"), timeout=RUN_TIMEOUT)
    message = str(failure.value)
    assert "joy" in message
    assert all(emotion in message for emotion in EMOTIONS), f"the error should list the eight emotions: {message}"
    assert "KSampler" in comfyui_server.get_json("/object_info")
