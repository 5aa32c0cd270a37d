"""EmoSet-118K as released -> prompt banks: the reader (split lists, annotation captions, bad
trees), bank build on the tiny tree (several clusters per emotion), the degenerate-caption
stop, corrupt images, plus banks of CLIP vision hidden states, the resumable feature cache
(resumed == uninterrupted, byte for byte) and a 2-process accelerate build (== 1 process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emotion_core.bank import load_bank
from emotion_core.bank.build import BuildSettings, build_bank
from emotion_core.cli import main
from emotion_core.datasets.emoset import read_emoset
from emotion_core.datasets.emoset_captions import caption_from_attributes
from emotion_core.errors import InvalidInputError
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.emoset_assets import SPLIT_SHARES, write_emoset_tree

REPO = Path(__file__).resolve().parents[1]
TRAIN = dict(SPLIT_SHARES)["train"]


@pytest.fixture(scope="module")
def emoset(tmp_path_factory):
    return write_emoset_tree(tmp_path_factory.mktemp("emoset") / "EmoSet-118K")["emoset_root"]


@pytest.fixture(scope="module")
def clip_file(comfy_models_dir):
    return comfy_models_dir / "emotion_critic" / "test_clip_b32_zero_shot.safetensors"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tree_is_emoset_118k_layout(emoset):
    """What EmoSet.py reads: info.json label maps, [emotion, id, image, annotation] lists, attribute types."""
    info = json.loads((emoset / "info.json").read_text())
    assert info["emotion"]["label2idx"] == {e: i for i, e in enumerate(EMOTIONS)}
    assert set(info) == {"emotion", "brightness", "colorfulness", "scene", "object", "facial_expression",
                         "human_action"}
    entry = json.loads((emoset / "train.json").read_text())[0]
    assert entry == ["amusement", "amusement_00001", "image/amusement/amusement_00001.jpg",
                     "annotation/amusement/amusement_00001.json"]
    annotation = json.loads((emoset / entry[3]).read_text())
    assert isinstance(annotation["object"], list) and isinstance(annotation["brightness"], float)
    for key in ("scene", "object", "brightness", "colorfulness"):  # EmoSet.py's label lookups succeed
        values = annotation[key] if key == "object" else [str(annotation[key])]
        assert all(v in info[key]["label2idx"] for v in values)


def test_captions_from_attributes():
    caption = caption_from_attributes({"scene": "stadium", "object": ["Person", "Flag"], "human_action": "applauding",
                                       "facial_expression": "happy", "brightness": 0.8, "colorfulness": 0.9})
    assert caption == "person and flag, people applauding, happy faces, at a stadium, bright, colourful"
    assert caption_from_attributes({"scene": "airport_terminal", "brightness": 0.1}) == "at an airport terminal, dark"
    assert caption_from_attributes({"brightness": 0.5}) == ""  # looks alone are no caption


def test_reader_splits_and_caption_sources(emoset, tmp_path):
    read = read_emoset(emoset, "train")
    assert read.split == "train" and list(read.images) == list(EMOTIONS)
    assert all(len(v) == TRAIN for v in read.images.values()) and not read.missing_annotations
    first = read.images["amusement"][0]
    annotation = json.loads((emoset / "annotation/amusement/amusement_00001.json").read_text())
    assert first.caption == caption_from_attributes(annotation) and first.caption_source == "attributes"
    assert read_emoset(emoset, "val").total == len(EMOTIONS)
    tree = Path(shutil.copytree(emoset, tmp_path / "t"))
    (tree / "image/awe/awe_00001.txt").write_text("a cathedral ceiling\n")
    (tree / "annotation/fear/fear_00002.json").unlink()
    read = read_emoset(tree, "train")
    assert read.images["awe"][0].caption == "a cathedral ceiling" and read.images["awe"][0].caption_source == "sidecar"
    assert read.missing_annotations == ["fear_00002"] and read.images["fear"][1].caption == "fear"
    with pytest.raises(InvalidInputError, match="fear_00002.json: annotation missing .--strict."):
        read_emoset(tree, "train", strict=True)


@pytest.mark.parametrize("entry,message", [
    (["joy", "joy_1", "image/joy/joy_1.jpg", "annotation/joy/joy_1.json"], "'joy' is not one of the eight"),
    (["awe", "x", "../outside.jpg", "annotation/awe/x.json"], "points outside the dataset folder"),
    (["awe", "x", "/etc/passwd", "annotation/awe/x.json"], "must be a relative path"),
    (["awe", "x"], "expected \\[emotion, image_id"),
])
def test_bad_lists(emoset, tmp_path, entry, message):
    tree = Path(shutil.copytree(emoset, tmp_path / "t"))
    (tree / "train.json").write_text(json.dumps([entry]))
    with pytest.raises(InvalidInputError, match=message):
        read_emoset(tree, "train")
    (tree / "train.json").write_text("[]")
    with pytest.raises(InvalidInputError, match="the train split is empty"):
        read_emoset(tree, "train")


def test_build_on_the_emoset_tree(capsys, tmp_path, emoset, clip_file):
    out = tmp_path / "bank.safetensors"
    code, stdout, err = run(capsys, "bank", "build", "--images", emoset, "--split", "train", "--clip", clip_file,
                            "--out", out, "--clusters", "3", "--workers", "1", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["clusters"] == {e: 3 for e in EMOTIONS} and summary["images"] == TRAIN * len(EMOTIONS)
    assert summary["split"] == "train" and summary["missing_annotations"] == 0 and "images/s" in err
    bank = load_bank(out)
    assert bank.kind.name == "ip-adapter" and bank.metadata["source_path"] == str(emoset.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.safetensors"]  # the feature cache is removed


def test_degenerate_captions_stop_the_build(capsys, tmp_path, clip_file):
    tree = write_emoset_tree(tmp_path / "no_annotations", with_annotations=False, emotions=("awe", "fear"))
    out = tmp_path / "bank.safetensors"
    argv = ("bank", "build", "--images", tree["emoset_root"], "--clip", clip_file, "--out", out, "--clusters", "2",
            "--workers", "0")
    code, _, err = run(capsys, *argv)
    assert code == 2 and not out.exists()
    assert "degenerate captions" in err and "awe: 6 of 6 captions are 'awe' (6 from file names)" in err
    assert "annotation/ JSONs" in err and "--allow-degenerate-captions" in err
    code, stdout, err = run(capsys, *argv, "--allow-degenerate-captions", "--json")
    assert code == 0 and json.loads(stdout)["clusters"] == {"awe": 1, "fear": 1}


def test_corrupt_images_are_skipped_and_listed(capsys, caplog, tmp_path, emoset, clip_file):
    tree = Path(shutil.copytree(emoset, tmp_path / "t"))
    bad = tree / "image/awe/awe_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    out = tmp_path / "bank.safetensors"
    code, stdout, err = run(capsys, "bank", "build", "--images", tree, "--clip", clip_file, "--out", out,
                            "--clusters", "3", "--workers", "0", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["unreadable_images"] == [str(bad.resolve())] and summary["per_emotion"]["awe"] == TRAIN - 1
    assert "skipped unreadable image" in caplog.text and "awe_00003.jpg" in caplog.text


def test_plus_bank_holds_hidden_state_centres(tmp_path, emoset, clip_file, tiny_sd_pipeline):
    from emotion_core.bank.extract import CroppedImages
    from emotion_core.bank.feature_encoders import clip_vision_encoder
    from emotion_core.bank.retrieval import bank_visual_prompt, check_bank_fits
    from emotion_core.bank.store import save_bank
    from emotion_core.visual_prompt import load_adapter

    settings = BuildSettings(clusters=3, kind="ip-adapter-plus", image_encoder="clip-vision",
                             clip_vision=str(tiny_sd_pipeline["image_encoder"]), show_progress=False, shard_size=5)
    bank = build_bank(emoset, clip_file, settings, out=tmp_path / "plus.safetensors")
    assert bank.kind.name == "ip-adapter-plus"
    hidden = bank.kind_centres("fear")
    assert hidden.ndim == 3 and hidden.shape[0] == 3 and hidden.shape[2] == 32
    # a centre is the mean penultimate hidden state of its members (recomputed image by image)
    encoder = clip_vision_encoder(tiny_sd_pipeline["image_encoder"])
    images = read_emoset(emoset, "train").images["fear"]
    dataset = CroppedImages([i.path for i in images], encoder.image_size)
    features = torch.cat([encoder.features(dataset[i][1][None])["penultimate_hidden_states"]
                          for i in range(len(images))])
    from emotion_core.bank.build import _cluster_captions
    from emotion_core.bank.feature_encoders import ClipTextEncoder, load_open_clip

    _, labels = _cluster_captions({"fear": images}, ClipTextEncoder(load_open_clip(clip_file).model),
                                  BuildSettings(clusters=3, seed=EMOTIONS.index("fear")))["fear"]
    for cluster in range(3):
        torch.testing.assert_close(hidden[cluster], features[labels == cluster].mean(dim=0), atol=1e-5, rtol=1e-5)
    plus, base = load_adapter(tiny_sd_pipeline["adapter_plus"]), load_adapter(tiny_sd_pipeline["adapter_base"])
    prompt = bank_visual_prompt(plus, bank, "fear", bank.text_centres["fear"][0], 1, negative_emotion="awe")
    assert prompt.variant == "plus" and prompt.tokens["negative_visual"].shape[-1] == plus.layout.cross_dim
    # the unconditional tokens are the neutral picture's, as an image prompt's (build_visual_prompt) are
    from emotion_core.visual_prompt import build_visual_prompt, neutral_image

    image_prompt = build_visual_prompt(plus, lambda images: encoder.encoder.features(images, plus.layout.feature_name),
                                       neutral_image(32))
    torch.testing.assert_close(prompt.tokens["negative"], image_prompt.tokens["negative"], atol=1e-4, rtol=1e-4)
    reloaded = load_bank(save_bank(bank, tmp_path / "plus_bank.safetensors"))
    torch.testing.assert_close(reloaded.neutral["visual_hidden_centres"], bank.neutral["visual_hidden_centres"])
    with pytest.raises(InvalidInputError, match="built for ip-adapter-plus adapters"):
        check_bank_fits(bank, base)


def test_resumed_build_equals_uninterrupted(capsys, tmp_path, emoset, clip_file):
    common = ("bank", "build", "--images", emoset, "--clip", clip_file, "--clusters", "3", "--shard-size", "7",
              "--batch-size", "4", "--workers", "0")
    whole = tmp_path / "whole.safetensors"
    assert run(capsys, *common, "--out", whole)[0] == 0
    resumed = tmp_path / "resumed.safetensors"
    settings = BuildSettings(clusters=3, shard_size=7, batch_size=4, show_progress=False)
    assert build_bank(emoset, clip_file, settings, out=resumed, stop_after_shards=2) is None  # "interrupted"
    cache = tmp_path / "resumed.safetensors.cache"
    assert len(list(cache.glob("shard_*.safetensors"))) == 2 and not resumed.exists()
    code, _, err = run(capsys, *common, "--out", resumed)
    assert code == 0, err
    assert resumed.read_bytes() == whole.read_bytes()
    other = ("bank", "build", "--images", emoset, "--clip", clip_file, "--clusters", "2", "--workers", "0")
    code, _, err = run(capsys, *other, "--out", tmp_path / "x.safetensors", "--cache-dir", tmp_path / "whole_cache",
                       "--keep-cache")
    assert code == 0, err
    code, _, err = run(capsys, *common, "--out", tmp_path / "y.safetensors", "--cache-dir", tmp_path / "whole_cache")
    assert code == 2 and "belongs to another build" in err and "clusters" in err


@pytest.mark.slow
def test_two_process_accelerate_build_equals_one_process(capsys, tmp_path, emoset, clip_file):
    pytest.importorskip("accelerate")
    args = ["bank", "build", "--images", str(emoset), "--clip", str(clip_file), "--clusters", "3", "--shard-size", "5",
            "--workers", "0"]
    single = tmp_path / "single.safetensors"
    assert run(capsys, *args, "--out", single)[0] == 0
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    double = tmp_path / "double.safetensors"
    command = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1", "-m", "emotion_core", *args,
               "--out", str(double), "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.strip().splitlines()) == 1  # only the main process reports
    assert "bank features [1]" in done.stderr  # the second process extracted its shards
    assert double.read_bytes() == single.read_bytes()
