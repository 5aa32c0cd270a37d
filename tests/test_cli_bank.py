"""``emotion-director bank build``: a bank from a tiny EmoSet-layout folder with the tiny
open_clip critic file, its JSON summary, the K-means/visual-centre pairing, the DINOv2
image encoder, and bad input (exit 2) without partial files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emotion_core.bank import load_bank
from emotion_core.bank.feature_encoders import ClipTextEncoder, clip_image_encoder, load_open_clip
from emotion_core.cli import main
from emotion_core.images import load_image

THEMES = {"awe": ("big mountain", "starry sky"), "Fear": ("dark forest", "empty alley")}
PER_THEME = 3


@pytest.fixture(scope="module")
def clip_file(comfy_models_dir):
    return comfy_models_dir / "emotion_critic" / "test_clip_b32_zero_shot.safetensors"


@pytest.fixture(scope="module")
def emoset(tmp_path_factory):
    """Six PNGs per emotion, two caption themes each (taken from the file names)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("emoset")
    rng = np.random.default_rng(0)
    for emotion, themes in THEMES.items():
        for theme in themes:
            for i in range(PER_THEME):
                path = root / emotion / f"{theme.replace(' ', '_')}_{i:03d}.png"
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(path)
    return root


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def build_args(emoset, clip_file, out, *extra):
    return ("bank", "build", "--images", str(emoset), "--clip", str(clip_file), "--out", str(out), *extra)


def test_build_pairs_caption_clusters_with_their_images(capsys, tmp_path, emoset, clip_file):
    out = tmp_path / "bank.safetensors"
    code, stdout, err = run(capsys, *build_args(emoset, clip_file, out, "--clusters", "2", "--json"))
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["images"] == 12 and summary["per_emotion"] == {"awe": 6, "fear": 6}
    assert summary["clusters"] == {"awe": 2, "fear": 2} and summary["text_dim"] == 512 and summary["visual_dim"] == 512
    assert "bank features" in err and "images/s" in err  # progress bar on stderr
    bank = load_bank(out)
    assert bank.metadata["source"] == emoset.name and bank.metadata["image_encoder"]["kind"] == "clip"
    clip = load_open_clip(clip_file)
    encode_text, encode_image = ClipTextEncoder(clip.model), clip_image_encoder(clip)
    bank.check_text_encoder(encode_text)
    hit = bank.retrieve("fear", encode_text(["dark forest"])[0], 1)
    assert hit.similarities[0] > 0.999  # the cluster is exactly the "dark forest" captions
    members = sorted((emoset / "Fear").glob("dark_forest_*.png"))
    expected = torch.cat([encode_image(load_image(p)) for p in members]).mean(dim=0)
    torch.testing.assert_close(hit.features[0], expected, atol=1e-4, rtol=1e-4)
    assert int(bank.counts["fear"][hit.indices[0]]) == PER_THEME


def test_existing_out_needs_overwrite_and_k_is_capped(capsys, tmp_path, emoset, clip_file):
    out = tmp_path / "bank.safetensors"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, *build_args(emoset, clip_file, out))
    assert code == 2 and "exists; pass --overwrite" in err and out.read_bytes() == b"keep me"
    code, _, err = run(capsys, *build_args(emoset, clip_file, out, "--overwrite", "--clusters", "50"))
    assert code == 2 and "degenerate captions" in err and "awe: 2 distinct captions for 50 clusters" in err
    assert "(6 from file names)" in err and out.read_bytes() == b"keep me"
    code, _, err = run(capsys, *build_args(emoset, clip_file, out, "--overwrite", "--clusters", "50",
                                           "--allow-degenerate-captions"))
    assert code == 0, err
    assert {e: int(c.shape[0]) for e, c in load_bank(out).counts.items()} == {"awe": 2, "fear": 2}  # distinct captions


def test_dino_image_encoder(capsys, tmp_path, emoset, clip_file):
    from transformers import Dinov2Config, Dinov2Model

    dino = tmp_path / "dino"
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8)).save_pretrained(dino)
    out = tmp_path / "dino_bank.safetensors"
    code, stdout, err = run(capsys, *build_args(emoset, clip_file, out, "--image-encoder", "dino", "--dino", str(dino),
                                                "--clusters", "2", "--json"))
    assert code == 0, err
    assert json.loads(stdout)["visual_dim"] == 32
    assert load_bank(out).metadata["image_encoder"] == {"kind": "dino", "name": "dino", "dim": 32,
                                                        "feature": "pooler_output"}
    code, _, err = run(capsys, *build_args(emoset, clip_file, tmp_path / "x.safetensors", "--image-encoder", "dino",
                                           "--dino", str(tmp_path), "--clusters", "2"))
    assert code == 2 and "no config.json" in err


@pytest.mark.parametrize("layout,message", [
    ({"joy": 1}, "not emotions"),
    ({"awe": 0}, "no images found"),
])
def test_bad_folders(capsys, tmp_path, clip_file, layout, message):
    from PIL import Image

    for folder, count in layout.items():
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / "data" / folder / f"{i}.png")
    out = tmp_path / "bank.safetensors"
    code, _, err = run(capsys, *build_args(tmp_path / "data", clip_file, out))
    assert code == 2 and message in err and not out.exists()


def test_bad_arguments(capsys, tmp_path, emoset, clip_file):
    code, _, err = run(capsys, *build_args(emoset, clip_file, tmp_path / "b.safetensors", "--dino", str(tmp_path)))
    assert code == 2 and "--dino DIR is needed with --image-encoder dino" in err
    code, _, err = run(capsys, *build_args(emoset, tmp_path / "missing.safetensors", tmp_path / "b.safetensors"))
    assert code == 2 and "--clip file not found" in err
    adapter = clip_file.parents[1] / "ipadapter" / "test_ip_adapter_sd15.safetensors"
    code, _, err = run(capsys, *build_args(emoset, adapter, tmp_path / "b.safetensors"))
    assert code == 2 and "not an open_clip CLIP file" in err


def test_interrupted_write_leaves_no_file(capsys, tmp_path, emoset, clip_file, monkeypatch):
    import emotion_core.weights as weights

    def interrupted(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "save_file", interrupted)
    out = tmp_path / "bank.safetensors"
    code, _, err = run(capsys, *build_args(emoset, clip_file, out, "--clusters", "2"))
    assert code == 1 and "interrupted" in err
    assert [p.name for p in tmp_path.iterdir()] == ["bank.safetensors.cache"]  # no bank file, no partial one
    assert [p.name for p in (tmp_path / "bank.safetensors.cache").iterdir()] == ["manifest.json"]  # whole files only
