"""A negative-visual DPO workflow through a real ComfyUI server's /prompt (COMFYUI_PATH), on CPU
with the tiny test models: checkpoint -> text; adapter + prompt bank (awe, and fear as the
negative visual prompt) -> Negative Visual DPO Sampler -> VAE decode; a plain KSampler
image as the rejected one -> Save Emotion Preference Pair."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

from emotion_core.testing.assets import TEST_FILES  # noqa: E402

BANK = {"critic_clip_b32": TEST_FILES["critic_clip_b32"], "bank": "emotion_banks/test_dpo_bank.safetensors",
        "bank_plus": "emotion_banks/test_dpo_bank_plus.safetensors"}


def _name(path: str) -> str:
    return path.split("/", 1)[1]


def test_dpo_sampler_and_preference_collector_workflow(comfyui_server):
    from emotion_core.preference import read_dataset
    from emotion_core.testing.bank_assets import write_test_bank

    write_test_bank(comfyui_server.models_dir, BANK)
    sampling = {"seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}
    bank = {"bank_name": _name(BANK["bank"]), "adapter": ["4", 0], "text": "", "top_k": 2, "combine": "weighted",
            "negative_emotion": "none"}
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": _name(TEST_FILES["checkpoint"])}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a quiet harbour at dusk", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "VisualPromptAdapterLoader", "inputs": {"adapter_name": _name(TEST_FILES["adapter_sd15"])}},
        "5": {"class_type": "EmotionVisualPromptBank", "inputs": {**bank, "emotion": "awe"}},
        "6": {"class_type": "EmotionVisualPromptBank", "inputs": {**bank, "emotion": "fear"}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {"class_type": "NegativeVisualDPOSampler",
              "inputs": {"model": ["1", 0], "adapter": ["4", 0], "positive": ["2", 0], "negative": ["3", 0],
                         "positive_visual_prompt": ["5", 0], "negative_visual_prompt": ["6", 0],
                         "latent_image": ["7", 0], "visual_scale": 2.0, "visual_schedule": "cosine_decay",
                         "visual_weight": 0.8, **sampling}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["7", 0], **sampling}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "12": {"class_type": "EmotionPreferenceCollector",
               "inputs": {"chosen": ["10", 0], "rejected": ["11", 0], "prompt": "a quiet harbour at dusk",
                          "target_emotion": "awe", "negative_emotion": "fear", "dataset": "dpo_workflow_test",
                          "positive_visual_prompt": ["5", 0], "negative_visual_prompt": ["6", 0]}},
    }
    entry = comfyui_server.run(prompt, timeout=900)
    assert "12" in entry["outputs"], entry["outputs"].keys()
    root = comfyui_server.output_dir / "emotion_preferences" / "dpo_workflow_test"
    result = read_dataset(root)
    assert not result.skipped and len(result.pairs) >= 1
    pair = result.pairs[-1]
    assert (pair.target_emotion, pair.negative_emotion) == ("awe", "fear")
    assert pair.positive_visual.source.startswith("bank:awe") and pair.negative_visual.role == "negative_visual"
    rows = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    assert rows[-1]["source"] == "comfyui"
