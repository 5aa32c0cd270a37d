"""Emotion Visual Prompt Bank node: schema, retrieval through the bank's own text tower,
its VISUAL_PROMPT driving the Visual Prompt Injector, and clear errors."""

import pytest
import torch

from emotion_core.testing.assets import TEST_FILES
from helpers.visual_prompt_models import TINY_LAYER_DIMS, adapter_for, inject, run_model, tiny_inputs

BANK = TEST_FILES["bank"].split("/", 1)[1]


@pytest.fixture(scope="module")
def bank_node(pack, comfy_models_dir):
    assert (comfy_models_dir / TEST_FILES["bank"]).is_file()  # make_test_models writes it
    from emotion_director_pack.nodes import prompt_bank

    (node,) = prompt_bank.NODES
    return node


@pytest.fixture(scope="module")
def test_adapter(visual_prompt_nodes):
    """The tiny SD1.5 base adapter test file, through the loader node."""
    return visual_prompt_nodes["VisualPromptAdapterLoader"].execute("test_ip_adapter_sd15.safetensors").args[0]


def run_bank(node, adapter, **kwargs):
    values = dict(bank_name=BANK, emotion="awe", text="", top_k=1, combine="weighted", negative_emotion="none")
    values.update(kwargs)
    return node.execute(adapter=adapter, **values).args[0]


def errors():
    from emotion_core import errors as pack_errors

    return pack_errors


def test_schema(bank_node):
    schema = bank_node.define_schema()
    assert schema.node_id == "EmotionVisualPromptBank" and schema.display_name == "Emotion Visual Prompt Bank"
    assert schema.description and all(i.tooltip for i in schema.inputs)
    assert BANK in schema.inputs[0].options


def test_text_retrieves_the_nearest_cluster(bank_node, test_adapter, comfy_models_dir):
    from emotion_core.bank import load_bank
    from emotion_core.bank.feature_encoders import load_text_encoder
    from emotion_core.visual_prompt import ProjectedPrompt

    bank = load_bank(comfy_models_dir / TEST_FILES["bank"])
    query = load_text_encoder(comfy_models_dir / TEST_FILES["critic_clip_b32"])(["a lonely lighthouse"])[0]
    nearest = int((bank.text_centres["fear"] @ query).argmax())
    prompt = run_bank(bank_node, test_adapter, emotion="Fear", text=" a lonely lighthouse ")
    expected = test_adapter.project(bank.visual_centres["fear"][nearest:nearest + 1])[0]
    torch.testing.assert_close(prompt.tokens["positive"], expected)
    assert prompt.source == "bank:fear"
    ProjectedPrompt.from_prompt(test_adapter, prompt)  # what the injector does with it
    largest = int(bank.counts["awe"].argmax())
    no_text = run_bank(bank_node, test_adapter)
    torch.testing.assert_close(no_text.tokens["positive"],
                               test_adapter.project(bank.visual_centres["awe"][largest:largest + 1])[0])


def test_negative_emotion_is_the_negative_visual_role(bank_node, test_adapter, comfy_models_dir):
    """The negative emotion's tokens feed the DPO guider's negative visual branch; the unconditional
    branch keeps the adapter's neutral tokens (the CFG negative stays plain text)."""
    from emotion_core.bank import load_bank
    from emotion_core.visual_prompt import NEGATIVE, NEGATIVE_VISUAL

    bank = load_bank(comfy_models_dir / TEST_FILES["bank"])
    prompt = run_bank(bank_node, test_adapter, emotion="awe", negative_emotion="fear")
    plain = run_bank(bank_node, test_adapter, emotion="awe")
    largest = int(bank.counts["fear"].argmax())
    torch.testing.assert_close(prompt.tokens[NEGATIVE_VISUAL],
                               test_adapter.project(bank.visual_centres["fear"][largest:largest + 1])[0])
    torch.testing.assert_close(prompt.tokens[NEGATIVE], plain.tokens[NEGATIVE])
    torch.testing.assert_close(prompt.tokens[NEGATIVE], test_adapter.project(torch.zeros(1, bank.visual_dim))[0])
    assert NEGATIVE_VISUAL not in plain.tokens


def test_bank_prompt_drives_the_injector(bank_node, visual_prompt_nodes, tiny_patcher):
    adapter = adapter_for(TINY_LAYER_DIMS, seed=1)
    x, context = tiny_inputs(1)
    plain = run_model(tiny_patcher, x, context, [0, 1])
    outputs = {}
    for emotion in ("awe", "fear"):
        prompt = run_bank(bank_node, adapter, emotion=emotion, text="a stormy sea", top_k=2, combine="concat",
                          negative_emotion="contentment")
        patched = inject(visual_prompt_nodes, tiny_patcher, adapter, image=None, clip_vision=None,
                         visual_prompt=prompt)
        outputs[emotion] = run_model(patched, x, context, [0, 1])
    assert not torch.allclose(outputs["awe"], plain) and not torch.allclose(outputs["awe"], outputs["fear"])


def test_errors(bank_node, test_adapter, comfy_models_dir):
    from emotion_core.bank.store import PromptBank, load_bank, save_bank

    plus = adapter_for(TINY_LAYER_DIMS, variant="plus")
    with pytest.raises(errors().InvalidInputError, match="plus adapter"):
        run_bank(bank_node, plus, text="x")
    corrupt = comfy_models_dir / "emotion_banks" / "corrupt.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(errors().ModelFormatError, match="corrupt.safetensors"):
        run_bank(bank_node, test_adapter, bank_name="corrupt.safetensors")
    bank = load_bank(comfy_models_dir / TEST_FILES["bank"])
    meta = {**bank.metadata, "text_encoder": {"kind": "open_clip", "file": "gone.safetensors", "dim": bank.text_dim}}
    save_bank(PromptBank(bank.text_centres, bank.visual_centres, bank.counts, bank.text_probe, meta),
              comfy_models_dir / "emotion_banks" / "orphan.safetensors")
    with pytest.raises(errors().ModelFormatError, match="open_clip file 'gone.safetensors'; put that file in"):
        run_bank(bank_node, test_adapter, bank_name="orphan.safetensors", text="x")
    with pytest.raises(errors().InvalidInputError, match="top_k"):
        run_bank(bank_node, test_adapter, top_k=0)
