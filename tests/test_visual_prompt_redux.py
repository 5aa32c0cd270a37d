"""Flux Redux visual prompts: a flux-redux prompt bank gives SigLIP sequences that ComfyUI's core
Apply Style Model reads; the negative output is another emotion's; banks for other families are
refused naming both. With COMFYUI_PATH: the outputs through the real StyleModelApply with a real
Redux model (ReduxImageEncoder), and the test SigLIP file detected by ComfyUI's clip_vision loader."""

import os

import pytest
import torch

from emotion_core.bank.store import load_bank
from emotion_core.errors import InvalidInputError
from emotion_core.visual_prompt.redux import (
    SiglipOutput,
    check_style_model,
    redux_sequence,
)

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))
BANK = "test_emotion_bank_flux_redux.safetensors"


@pytest.fixture(scope="module")
def redux_node(pack, comfy_models_dir):
    from emotion_director_pack.nodes import redux

    return redux.EmotionReduxPrompt


@pytest.fixture(scope="module")
def bank(comfy_models_dir):
    return load_bank(comfy_models_dir / "emotion_banks" / BANK)


def test_weighted_and_concat_sequences(bank):
    retrieval = bank.retrieve("awe", None, 2)
    weighted = redux_sequence(bank, "awe", None, 2)
    expected = (retrieval.weights[:, None, None] * bank.kind_centres("awe")[list(retrieval.indices)].float()).sum(0)
    assert weighted.shape == (1, 16, 1152) and torch.allclose(weighted[0], expected)
    assert redux_sequence(bank, "awe", None, 2, "concat").shape == (1, 32, 1152)


def test_node_gives_both_emotions_as_clip_vision_outputs(redux_node, bank):
    out = redux_node.execute(bank_name=BANK, emotion="awe", text="", top_k=2, combine="weighted",
                             negative_emotion="fear").args
    positive, negative = out
    assert isinstance(positive, SiglipOutput) and positive["last_hidden_state"] is positive.last_hidden_state
    assert torch.equal(positive.last_hidden_state, redux_sequence(bank, "awe", None, 2))
    assert torch.equal(negative.last_hidden_state, redux_sequence(bank, "fear", None, 2))
    with_text = redux_node.execute(bank_name=BANK, emotion="awe", text="a storm over the sea", top_k=1,
                                   combine="weighted", negative_emotion="fear").args[0]
    assert with_text.last_hidden_state.shape == (1, 16, 1152)


def test_an_sd_bank_on_flux_names_both_families(redux_node):
    with pytest.raises(InvalidInputError, match=r"built for SD1.5/SDXL IP-Adapter base adapters .* Flux Redux"):
        redux_node.execute(bank_name="test_emotion_bank.safetensors", emotion="awe", text="", top_k=1,
                           combine="weighted", negative_emotion="fear")


def test_style_model_width_is_checked_at_once():
    check_style_model(1152, 1152)
    with pytest.raises(InvalidInputError, match="reads 768-d image features but the bank's SigLIP centres are 1152-d"):
        check_style_model(768, 1152)


@pytest.mark.skipif(not COMFYUI, reason="needs ComfyUI's Redux model and StyleModelApply")
def test_core_apply_style_model_reads_the_bank_outputs(redux_node):
    import comfy.sd
    from comfy.ldm.flux.redux import ReduxImageEncoder

    from emotion_core.testing.redux_assets import redux_state_dict
    from nodes import StyleModelApply

    encoder = ReduxImageEncoder()
    encoder.load_state_dict(redux_state_dict())  # strict: the writer's layout is ComfyUI's
    style_model = comfy.sd.StyleModel(encoder.float())
    positive, negative = redux_node.execute(bank_name=BANK, emotion="awe", text="", top_k=2, combine="weighted",
                                            negative_emotion="fear", style_model=style_model).args
    text = [[torch.randn(1, 7, 4096), {"pooled_output": torch.randn(1, 768)}]]
    (pos,) = StyleModelApply().apply_stylemodel(text, style_model, positive, 1.0, "multiply")
    (neg,) = StyleModelApply().apply_stylemodel(text, style_model, negative, 1.0, "multiply")
    assert pos[0][0].shape == (1, 7 + 16, 4096) and torch.equal(pos[0][0][:, :7], text[0][0])
    assert torch.equal(neg[0][0][:, :7], text[0][0]) and not torch.equal(neg[0][0], pos[0][0])
    with torch.no_grad():
        assert torch.allclose(pos[0][0][0, 7:], encoder(positive.last_hidden_state)[0], atol=1e-4)


@pytest.mark.skipif(not COMFYUI, reason="needs ComfyUI's clip_vision loader")
def test_comfyui_detects_the_test_siglip_layout():
    import comfy.clip_vision

    from emotion_core.testing.redux_assets import siglip_vision_state_dict

    state = {k: v for k, v in siglip_vision_state_dict().items()}
    clip = comfy.clip_vision.load_clipvision_from_sd(state)
    assert clip.return_all_hidden_states and clip.image_size == 384  # clip_vision_siglip_384.json
    out = clip.encode_image(torch.rand(1, 64, 64, 3))
    assert out.last_hidden_state.shape == (1, 729, 1152) and torch.isfinite(out.last_hidden_state).all()


@pytest.fixture(scope="module")
def tiny_siglip_folder(tmp_path_factory):
    """A random transformers SiglipVisionModel (tiny widths, SigLIP's layout and head) saved locally."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    folder = tmp_path_factory.mktemp("siglip") / "siglip_tiny"
    SiglipVisionModel(config).eval().save_pretrained(folder)
    return folder


def test_bank_build_stores_siglip_sequence_centres(tmp_path, tiny_siglip_folder, comfy_models_dir, capsys):
    """`bank build --kind flux-redux --siglip DIR`: per cluster the mean SigLIP last_hidden_state of its
    members (recomputed image by image), the pooled output as the pooled centres; the bank reads back as a
    flux-redux bank whose retrieval is a SigLIP sequence."""
    from emotion_core.bank.build import _cluster_captions
    from emotion_core.bank.extract import CroppedImages
    from emotion_core.bank.feature_encoders import ClipTextEncoder, load_open_clip
    from emotion_core.bank.siglip_encoder import siglip_encoder
    from emotion_core.cli import main
    from emotion_core.datasets.emoset import read_emoset
    from emotion_core.taxonomy import EMOTIONS
    from emotion_core.testing.emoset_assets import write_emoset_tree

    emoset = write_emoset_tree(tmp_path / "EmoSet-118K")["emoset_root"]
    clip_file = comfy_models_dir / "emotion_critic" / "test_clip_b32_zero_shot.safetensors"
    out = tmp_path / "redux_bank.safetensors"
    assert main(["bank", "build", "--images", str(emoset), "--clip", str(clip_file), "--out", str(out), "--kind",
                 "flux-redux", "--siglip", str(tiny_siglip_folder), "--clusters", "2", "--json"]) == 0
    capsys.readouterr()
    bank = load_bank(out)
    assert bank.kind.name == "flux-redux" and bank.metadata["image_encoder"]["kind"] == "siglip"
    sequences = bank.kind_centres("fear")
    assert sequences.shape == (2, 4, 32)  # 28 px / patch 14 -> 4 tokens of width 32
    encoder = siglip_encoder(tiny_siglip_folder)
    images = read_emoset(emoset, "train").images["fear"]
    dataset = CroppedImages([i.path for i in images], encoder.image_size)
    features = [encoder.features(dataset[i][1][None]) for i in range(len(images))]
    hidden = torch.cat([f["last_hidden_state"] for f in features])
    pooled = torch.cat([f["image_embeds"] for f in features])
    from emotion_core.bank.build import BuildSettings

    _, labels = _cluster_captions({"fear": images}, ClipTextEncoder(load_open_clip(clip_file).model),
                                  BuildSettings(clusters=2, seed=EMOTIONS.index("fear")))["fear"]
    for cluster in range(2):
        torch.testing.assert_close(sequences[cluster], hidden[labels == cluster].mean(dim=0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bank.visual_centres["fear"][cluster], pooled[labels == cluster].mean(dim=0),
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(InvalidInputError, match="SigLIP centres are 32-d; Flux Redux reads 1152-d"):
        redux_sequence(bank, "fear", None, 1)


def test_bank_build_refuses_redux_without_siglip(tmp_path, comfy_models_dir, capsys):
    from emotion_core.cli import main

    code = main(["bank", "build", "--images", str(tmp_path), "--clip", "x.safetensors", "--out",
                 str(tmp_path / "b.safetensors"), "--kind", "flux-redux"])
    assert code == 2 and "needs --siglip DIR" in capsys.readouterr().err
