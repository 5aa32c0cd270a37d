"""Emotion critics: every kind loads from the test files and answers in canonical order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emotion_core.critics import ClipProbeCritic, EmoEditorResNetCritic, critic_metadata_template, load_critic
from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.taxonomy import EMOEDITOR_ORDER, EMOTIONS
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.critic_assets import _clip_state, tiny_clip_config, write_test_critics
from emotion_core.weights import load_state_dict, read_metadata, save_safetensors

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("critic_clip_b32", "critic_clip_l14", "critic_emogen", "critic_emoedit", "critic_emoeditor")


@pytest.fixture(scope="module")
def critic_files(tmp_path_factory):
    return write_test_critics(tmp_path_factory.mktemp("models"), TEST_FILES, seed=0)


@pytest.fixture(scope="module")
def critics(critic_files):
    return {role: load_critic(path) for role, path in critic_files.items()}


def _images(batch=3, height=40, width=52, channels=3, seed=0):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("role", ROLES)
def test_every_kind_gives_canonical_probabilities(critics, role):
    probs = critics[role].predict(_images())
    assert probs.shape == (3, 8)
    assert torch.all(probs >= 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))


def test_kinds_and_class_orders(critics):
    kinds = {role: c.kind for role, c in critics.items()}
    assert kinds == {"critic_clip_b32": "clip_zero_shot", "critic_clip_l14": "clip_zero_shot",
                     "critic_emogen": "clip_probe", "critic_emoedit": "clip_probe",
                     "critic_emoeditor": "emoeditor_resnet18"}
    assert critics["critic_emoeditor"].class_order == EMOEDITOR_ORDER
    assert critics["critic_emogen"].class_order == EMOTIONS
    assert critics["critic_emogen"].layout == "emogen" and critics["critic_emoedit"].layout == "emoedit"


def _resnet_state(critic_files):
    return load_state_dict(critic_files["critic_emoeditor"])


def test_resnet_alphabetical_order_is_remapped(critic_files, tmp_path):
    state = _resnet_state(critic_files)
    state["fc.weight"] = torch.zeros(8, 512)
    state["fc.bias"] = torch.zeros(8)
    state["fc.bias"][EMOEDITOR_ORDER.index("anger")] = 20.0  # alphabetical index 1
    path = save_safetensors(state, tmp_path / "predictor.safetensors")  # no metadata: kind and order by default
    critic = load_critic(path)
    assert isinstance(critic, EmoEditorResNetCritic)
    probs = critic.predict(_images(2))
    assert probs.argmax(-1).tolist() == [4, 4] and EMOTIONS[4] == "anger"
    assert probs[0, 4] > 0.99


def test_resnet_input_is_224_and_not_normalised(critics):
    critic = critics["critic_emoeditor"]
    assert critic.gradcam_input_layer is critic.model.layer4[-1]
    seen = []
    handle = critic.model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        critic.predict(torch.full((2, 100, 60, 3), 0.7))
    finally:
        handle.remove()
    assert seen[0].shape == (2, 3, 224, 224)
    torch.testing.assert_close(seen[0], torch.full_like(seen[0], 0.7))


def test_clip_preprocess_crops_to_model_size_and_normalises(critics):
    critic = critics["critic_clip_b32"]
    out = critic.preprocess(torch.full((1, 3, 48, 80), 0.5))
    assert out.shape == (1, 3, 32, 32)
    expected = (0.5 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(out[0, :, 0, 0], expected)


def test_zero_shot_text_features_are_computed_once(critics):
    critic = critics["critic_clip_b32"]
    assert critic.text_features.shape == (8, 512)
    torch.testing.assert_close(critic.text_features.norm(dim=-1), torch.ones(8))
    assert not any("token_embedding" in name for name, _ in critic.named_parameters())  # text tower dropped
    images = _images(2)
    torch.testing.assert_close(critic.predict(images), critic.predict(images), rtol=0, atol=0)


def test_zero_shot_prompts_overridable_by_sidecar(critic_files, critics, tmp_path):
    source = critic_files["critic_clip_b32"]
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    path.with_suffix(".json").write_text(json.dumps({"prompts": {"Awe": ["a tiny test prompt"]}}))
    critic = load_critic(path)
    assert critic.prompts["awe"] == ["a tiny test prompt"]
    base = critics["critic_clip_b32"].text_features
    changed = (critic.text_features - base).abs().sum(-1) > 1e-6
    assert changed.tolist() == [e == "awe" for e in EMOTIONS]


def test_grayscale_and_rgba_inputs(critics):
    critic = critics["critic_emoedit"]
    gray = _images(2, channels=1)
    torch.testing.assert_close(critic.predict(gray), critic.predict(gray.expand(-1, -1, -1, 3)))
    rgba = _images(2, channels=4)
    torch.testing.assert_close(critic.predict(rgba), critic.predict(rgba[..., :3]))


def test_nan_image_is_invalid_input(critics):
    images = _images(1)
    images[0, 3, 3, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        critics["critic_emogen"].predict(images)


def test_dtype_argument(critic_files):
    critic = load_critic(critic_files["critic_emoedit"], dtype=torch.float64)
    assert critic.dtype == torch.float64
    assert critic.predict(_images(1)).dtype == torch.float32


def _copy_head(critic_files, role, folder: Path, **metadata) -> Path:
    state = load_state_dict(critic_files[role])
    meta = {**read_metadata(critic_files[role]), **metadata}
    return save_safetensors(state, folder / f"{role}.safetensors", meta)


def test_head_width_must_match_backbone(critic_files):
    b32 = critic_files["critic_clip_b32"].name
    path = _copy_head(critic_files, "critic_emogen", critic_files["critic_emogen"].parent, backbone_file=b32)
    with pytest.raises(ModelFormatError, match=rf"768.*{b32}.*512"):
        load_critic(path)


def test_backbone_file_must_stay_inside_the_folder(critic_files, tmp_path):
    inner = tmp_path / "critics"
    inner.mkdir()
    (tmp_path / "x.safetensors").write_bytes(critic_files["critic_clip_l14"].read_bytes())
    path = _copy_head(critic_files, "critic_emogen", inner, backbone_file="../x.safetensors")
    with pytest.raises(ModelFormatError, match="outside"):
        load_critic(path)


def test_probe_without_backbone_file(critic_files, tmp_path):
    state = load_state_dict(critic_files["critic_emoedit"])
    path = save_safetensors(state, tmp_path / "head.safetensors")
    with pytest.raises(ModelFormatError, match="backbone_file"):
        load_critic(path)


def test_probe_head_as_pt_with_sidecar(critic_files):
    folder = critic_files["critic_emoedit"].parent
    path = folder / "head_from_torch.pt"
    torch.save(load_state_dict(critic_files["critic_emoedit"]), path)
    path.with_suffix(".json").write_text(json.dumps({"backbone_file": critic_files["critic_clip_b32"].name}))
    critic = load_critic(path)
    assert isinstance(critic, ClipProbeCritic) and critic.layout == "emoedit"
    assert critic.predict(_images(1)).shape == (1, 8)


def test_unknown_layout_lists_found_and_expected(tmp_path):
    path = save_safetensors({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "odd.safetensors")
    with pytest.raises(ModelFormatError, match=r"encoder\.weight.*expected one of.*emoeditor_resnet18"):
        load_critic(path)


def test_unknown_kind_in_metadata(tmp_path):
    path = save_safetensors({"fc.weight": torch.zeros(8, 4)}, tmp_path / "h.safetensors", {"kind": "magic"})
    with pytest.raises(ModelFormatError, match="magic"):
        load_critic(path)


def test_shape_mismatch_is_a_format_error(critic_files, tmp_path):
    state = _resnet_state(critic_files)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    path = save_safetensors(state, tmp_path / "bad.safetensors")
    with pytest.raises(ModelFormatError, match=r"layer1\.0\.conv1\.weight"):
        load_critic(path)


def test_missing_keys_are_listed(critic_files, tmp_path):
    state = load_state_dict(critic_files["critic_clip_b32"])
    del state["ln_final.weight"]
    path = save_safetensors(state, tmp_path / "clip.safetensors", read_metadata(critic_files["critic_clip_b32"]))
    with pytest.raises(ModelFormatError, match=r"missing 1 keys: ln_final\.weight"):
        load_critic(path)


def test_bad_class_order_in_metadata(critic_files, tmp_path):
    path = _copy_head(critic_files, "critic_emoeditor", tmp_path, class_order=["amusement", "awe"])
    with pytest.raises(ModelFormatError, match="class order"):
        load_critic(path)


def test_truncated_file(critic_files, tmp_path):
    data = critic_files["critic_emoedit"].read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="truncated"):
        load_critic(path)


def test_clip_without_metadata_needs_a_sidecar(tmp_path):
    config = tiny_clip_config(512, 16, 1)
    path = save_safetensors(_clip_state(config, seed=3), tmp_path / "clip.safetensors")
    with pytest.raises(ModelFormatError, match=r"clip\.json.*open_clip_model"):
        load_critic(path)
    path.with_suffix(".json").write_text(json.dumps({"open_clip_config": config}))
    assert load_critic(path).kind == "clip_zero_shot"


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-L-14"])
def test_standard_models_recognised_from_shapes(name):
    import open_clip

    from emotion_core.critics.clip_backbone import infer_open_clip_model

    with torch.device("meta"):
        state = open_clip.model.CLIP(**open_clip.get_model_config(name)).state_dict()
    assert infer_open_clip_model(state) == name


def test_test_critics_are_deterministic():
    config = tiny_clip_config(512, 16, 1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first, second = _clip_state(config, seed=5), _clip_state(config, seed=5)
    assert torch.rand(1) == before  # the caller's RNG is untouched
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["visual.proj"], _clip_state(config, seed=6)["visual.proj"])


def test_metadata_template():
    assert critic_metadata_template("clip_probe")["kind"] == "clip_probe"
    with pytest.raises(InvalidInputError):
        critic_metadata_template("nope")


def test_import_does_not_load_open_clip_or_torchvision():
    code = "import sys, emotion_core.critics; print('open_clip' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
