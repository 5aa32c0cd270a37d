"""Preference datasets: writer never overwrites and stays in its folder; reader skips corrupt
rows with a count; EmoPair and EmoSet layouts; the collector node (stand-in or real ComfyUI)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from PIL import Image

from emotion_core.errors import InvalidInputError
from emotion_core.preference import PAIRS_FILE, PreferenceStore, read_dataset, safe_dataset_dir
from emotion_core.visual_prompt import VisualPrompt
from emotion_core.weights import load_state_dict


def _image(colour):
    return Image.new("RGB", (16, 16), colour)


def _prompt(seed, source):
    g = torch.Generator().manual_seed(seed)
    return VisualPrompt({"positive": torch.randn(4, 8, generator=g), "negative": torch.zeros(4, 8)}, "sd15", "base",
                        8, source)


def test_write_then_read_roundtrip(tmp_path):
    store = PreferenceStore(tmp_path / "ds")
    pair = store.add(_image("red"), _image("blue"), "a harbour", "Awe", "fear", _prompt(0, "bank:awe"),
                     _prompt(1, "bank:fear"))
    second = store.add(_image("green"), _image("black"), "a forest", "sadness")
    assert (pair.id, second.id) == ("000001", "000002")
    result = read_dataset(tmp_path / "ds")
    assert result.layout == "jsonl" and not result.skipped
    first, other = result.pairs
    assert first.target_emotion == "awe" and first.negative_emotion == "fear" and first.prompt == "a harbour"
    assert Image.open(first.chosen).getpixel((0, 0)) == (255, 0, 0)
    assert first.positive_visual.role == "positive" and first.negative_visual.role == "negative_visual"
    tokens = load_state_dict(first.positive_visual.tokens)
    assert torch.equal(tokens["negative_visual"], _prompt(1, "x").tokens["positive"])
    assert other.positive_visual is None and other.negative_emotion is None


def test_never_overwrites_existing_files(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    squatter = root / "images" / "000001_chosen.png"
    squatter.write_bytes(b"not mine")
    (root / "images" / "000007_rejected.png").write_bytes(b"also not mine")
    pair = PreferenceStore(root).add(_image("red"), _image("blue"), "p", "awe")
    assert pair.id == "000008"
    assert squatter.read_bytes() == b"not mine"
    before = (root / PAIRS_FILE).read_bytes()
    PreferenceStore(root).add(_image("red"), _image("blue"), "q", "awe")
    after = (root / PAIRS_FILE).read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 2
    assert not [p for p in root.rglob("*.tmp")], "no temporary files are left behind"


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../../b", "..", "", "a/./b", "C:\\x", "ok/.."])
def test_dataset_names_cannot_escape(tmp_path, name):
    with pytest.raises(InvalidInputError):
        safe_dataset_dir(tmp_path, name)


def test_dataset_name_symlink_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidInputError, match="outside"):
        safe_dataset_dir(root, "link/x")
    assert safe_dataset_dir(root, "my set/v1") == (root / "my set" / "v1").resolve()


def test_corrupt_and_partial_rows_are_skipped_with_a_count(tmp_path, caplog):
    root = tmp_path / "ds"
    store = PreferenceStore(root)
    store.add(_image("red"), _image("blue"), "good", "awe")
    good = json.loads((root / PAIRS_FILE).read_text())
    rows = [
        "{not json",
        json.dumps({**good, "target_emotion": "joy"}),
        json.dumps({**good, "chosen": "images/missing.png"}),
        json.dumps({**good, "rejected": "../../etc/passwd"}),
        json.dumps({k: v for k, v in good.items() if k != "prompt"}),
        json.dumps([1, 2]),
    ]
    with open(root / PAIRS_FILE, "a", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n" + json.dumps(good)[:20])  # last line cut
    with caplog.at_level(logging.WARNING):
        result = read_dataset(root)
    assert len(result.pairs) == 1 and len(result.skipped) == 7
    assert "skipped 7 corrupt or partial rows of 8" in caplog.text
    reasons = " ".join(why for _, why in result.skipped)
    assert "unknown emotion" in reasons and "does not exist" in reasons and "outside" in reasons
    store.add(_image("red"), _image("blue"), "after a cut line", "awe")  # the writer keeps the cut line
    assert len(read_dataset(root).pairs) == 2


def test_emopair_layout(tmp_path):
    root = tmp_path / "emo"
    (root / "EmoPair" / "src").mkdir(parents=True)
    (root / "json").mkdir()
    _image("gray").save(root / "EmoPair" / "src" / "a.png")
    _image("yellow").save(root / "EmoPair" / "src" / "b.png")
    rows = [{"img_src_path": "src/a.png", "img_tgt_path": "src/b.png", "class_source": "sadness",
             "class_target": "contentment", "prompt": "make it happier", "source_softmax": [0.125] * 8},
            {"img_src_path": "src/missing.png", "img_tgt_path": "src/b.png", "class_source": "sadness",
             "class_target": "awe", "prompt": "x", "source_softmax": [0.125] * 8}]
    (root / "json" / "data_EmoPair.json").write_text(json.dumps(rows))
    result = read_dataset(root)
    assert result.layout == "emopair" and len(result.pairs) == 1 and len(result.skipped) == 1
    pair = result.pairs[0]
    assert pair.chosen.name == "b.png" and pair.rejected.name == "a.png"
    assert (pair.target_emotion, pair.negative_emotion) == ("contentment", "sadness")
    assert pair.positive_visual is None and pair.negative_visual is None  # from a bank, never its own images


def test_emoset_layout(tmp_path):
    root = tmp_path / "emoset"
    for emotion, colours in (("awe", ["white", "blue"]), ("Fear", ["black"]), ("sadness", ["gray"])):
        (root / emotion).mkdir(parents=True)
        for i, colour in enumerate(colours):
            _image(colour).save(root / emotion / f"misty_mountain_{i}.png")
    result = read_dataset(root)
    assert result.layout == "emoset" and not result.skipped
    by_id = {p.id: p for p in result.pairs}
    assert len(by_id) == 4
    awe0 = by_id["awe/misty_mountain_0.png"]
    assert awe0.negative_emotion == "fear" and awe0.prompt == "misty mountain"
    assert by_id["awe/misty_mountain_1.png"].negative_emotion == "sadness"
    assert by_id["fear/misty_mountain_0.png"].negative_emotion == "awe"


def test_collector_node(pack, tmp_path, monkeypatch):
    import folder_paths

    from emotion_core.errors import InvalidInputError as PackInvalidInput
    from emotion_director_pack.nodes.preference import EmotionPreferenceCollector

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path / "output"))
    chosen, rejected = torch.rand(2, 16, 16, 3), torch.rand(1, 16, 16, 3)
    out = EmotionPreferenceCollector.execute(chosen=chosen, rejected=rejected, prompt="a harbour", target_emotion="awe",
                                             negative_emotion="fear", dataset="mine/v1",
                                             positive_visual_prompt=_prompt(0, "a"),
                                             negative_visual_prompt=_prompt(1, "b"))
    report = json.loads(out.args[0])
    assert report["pairs"] == ["000001", "000002"] and "saved 2 pair(s)" in out.ui["text"][0]
    root = tmp_path / "output" / "emotion_preferences" / "mine" / "v1"
    assert report["dataset"] == str(root.resolve())
    pairs = read_dataset(root).pairs
    assert len(pairs) == 2 and pairs[1].negative_visual is not None
    with pytest.raises(PackInvalidInput, match="batch size"):
        EmotionPreferenceCollector.execute(chosen=chosen, rejected=torch.rand(3, 16, 16, 3), prompt="", dataset="x",
                                           target_emotion="awe", negative_emotion="none")
    with pytest.raises(PackInvalidInput):
        EmotionPreferenceCollector.execute(chosen=chosen, rejected=rejected, prompt="", dataset="../../x",
                                           target_emotion="awe", negative_emotion="none")
    assert not (tmp_path / "x").exists()
