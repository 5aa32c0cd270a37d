"""``emotion-director score`` and ``convert``: JSON shapes, exit codes, pickle safety."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from helpers.malicious_pickle import write_malicious
from PIL import Image

from emotion_core.cli import main
from emotion_core.critics import load_critic
from emotion_core.taxonomy import EMOEDITOR_ORDER, EMOTIONS
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.critic_assets import write_test_critics
from emotion_core.weights import load_state_dict, read_metadata


@pytest.fixture(scope="module")
def critic_files(tmp_path_factory):
    return write_test_critics(tmp_path_factory.mktemp("models"), TEST_FILES, seed=1)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, mode, size in (("rgb.png", "RGB", (40, 30)), ("gray.png", "L", (64, 64)), ("rgba.png", "RGBA", (33, 50))):
        channels = len(mode)
        array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
        path = tmp_path / name
        Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(path)
        paths.append(str(path))
    return paths


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_score_json_lines(capsys, critic_files, images):
    code, out, _ = run_cli(capsys, "score", *images, "--critic", critic_files["critic_emoedit"], "--json", "--batch-size", 2)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in results] == images
    for result in results:
        assert list(result) == ["image", "distribution", "top"]
        assert list(result["distribution"]) == list(EMOTIONS)
        assert sum(result["distribution"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["top"] == max(result["distribution"], key=result["distribution"].get)


def test_score_matches_the_critic(capsys, critic_files, images):
    from emotion_core.images import load_image

    code, out, _ = run_cli(capsys, "score", images[0], "--critic", critic_files["critic_emoeditor"], "--json")
    assert code == 0
    expected = load_critic(critic_files["critic_emoeditor"]).predict(load_image(images[0]))[0]
    got = torch.tensor(list(json.loads(out)["distribution"].values()))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_score_text_output(capsys, critic_files, images):
    code, out, _ = run_cli(capsys, "score", images[1], "--critic", critic_files["critic_clip_b32"])
    assert code == 0 and out.startswith(f"image: {images[1]}") and "top: " in out


def test_score_unreadable_image_exits_2(capsys, critic_files, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    code, _, err = run_cli(capsys, "score", images[0], str(broken), "--critic", critic_files["critic_emoedit"], "--json")
    assert code == 2 and str(broken) in err


@pytest.mark.parametrize("argv", [
    ["score", "missing.png", "--critic", "{critic}"],
    ["score", "{image}", "--critic", "missing.safetensors"],
    ["score", "{image}", "--critic", "{critic}", "--batch-size", "0"],
    ["score", "{image}"],
])
def test_score_bad_input_exits_2(capsys, critic_files, images, argv):
    argv = [a.format(critic=critic_files["critic_emoedit"], image=images[0]) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error:")


def test_convert_pt_probe_head(capsys, critic_files):
    folder = critic_files["critic_emoedit"].parent
    source = folder / "emoedit_head.pt"
    torch.save(load_state_dict(critic_files["critic_emoedit"]), source)
    target = folder / "emoedit_head.safetensors"
    backbone = critic_files["critic_clip_b32"].name
    code, out, _ = run_cli(capsys, "convert", source, target, "--backbone-file", backbone, "--json")
    assert code == 0
    assert json.loads(out) == {"input": str(source), "output": str(target), "kind": "clip_probe", "tensors": 4}
    assert read_metadata(target) == {"kind": "clip_probe", "backbone_file": backbone, "converted_from": source.name}
    assert load_critic(target).predict(torch.rand(1, 32, 32, 3)).shape == (1, 8)

    code, _, err = run_cli(capsys, "convert", source, target)
    assert code == 2 and "--overwrite" in err
    assert run_cli(capsys, "convert", source, target, "--overwrite")[0] == 0


def test_convert_refuses_code_running_pickle(capsys, tmp_path):
    marker = tmp_path / "pwned"
    source = write_malicious(tmp_path / "evil.pth", marker)
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "out.safetensors")
    assert code == 2 and "--trust-pickle" in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_convert_trusted_training_checkpoint(capsys, critic_files, tmp_path, caplog):
    source = tmp_path / "predictor.ckpt"
    state = load_state_dict(critic_files["critic_emoeditor"])
    torch.save({"args": argparse.Namespace(lr=1e-4, epochs=10), "state_dict": state}, source)
    target = tmp_path / "predictor.safetensors"
    order = ",".join(EMOEDITOR_ORDER)
    code, out, _ = run_cli(capsys, "convert", source, target, "--trust-pickle", "--class-order", order, "--json")
    assert code == 0 and json.loads(out)["kind"] == "emoeditor_resnet18"
    assert "full pickle" in caplog.text
    assert read_metadata(target)["class_order"] == list(EMOEDITOR_ORDER)
    critic = load_critic(target)
    assert critic.class_order == EMOEDITOR_ORDER
    torch.testing.assert_close(critic.model.fc.weight, state["fc.weight"])


def test_convert_unknown_layout_needs_kind(capsys, tmp_path):
    source = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, source)
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "a.safetensors")
    assert code == 2 and "--kind" in err
    code, out, _ = run_cli(capsys, "convert", source, tmp_path / "a.safetensors", "--kind", "custom", "--json")
    assert code == 0 and json.loads(out)["kind"] == "custom"


@pytest.mark.parametrize("extra", [["--class-order", "awe,fear"], ["--backbone-file", "../x.safetensors"]])
def test_convert_bad_flags_exit_2(capsys, tmp_path, extra):
    source = tmp_path / "h.pt"
    torch.save({"fc.weight": torch.zeros(8, 4), "fc.bias": torch.zeros(8)}, source)
    code, _, _ = run_cli(capsys, "convert", source, tmp_path / "h.safetensors", *extra)
    assert code == 2 and not (tmp_path / "h.safetensors").exists()


def test_convert_output_must_be_safetensors(capsys, tmp_path):
    source = tmp_path / "h.pt"
    torch.save({"fc.weight": torch.zeros(8, 4)}, source)
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "h.pt2")
    assert code == 2 and ".safetensors" in err
