"""A full disk or a read-only output folder while saving preference pairs (the store and the
Save Emotion Preference Pair node), prompt banks and Save Emotion Image PNGs.

We run as root, so chmod does not stop writes: the failing OS call is monkeypatched to
raise what the kernel raises. A write through an open file fails without a file name
(ENOSPC), a rename or link fails with its paths (EROFS). Each case must give an error
that names the file or folder, leave earlier data byte for byte as it was, and leave
no temp file or half-saved pair behind."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_pack

load_pack()
from emotion_core import report as pack_report  # noqa: E402
from emotion_core import weights as pack_weights  # noqa: E402
from emotion_core.preference import PreferenceStore, read_dataset  # noqa: E402
from emotion_core.preference import store as pack_store  # noqa: E402
from emotion_core.visual_prompt import VisualPrompt  # noqa: E402

FULL = "No space left on device"


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))


def _prompt(seed: int) -> VisualPrompt:
    g = torch.Generator().manual_seed(seed)
    return VisualPrompt({"positive": torch.randn(4, 768, generator=g), "negative": torch.zeros(4, 768)}, "sd15",
                        "base", 768, f"bank:{seed}")


def _disk_full_on_write(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, FULL)  # what write(2) on a full disk raises: no file name


def _read_only(call):
    def fail(src, dst, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(src), None, os.fspath(dst))

    return fail


def _png_save_fails_on(call_number: int):
    """PIL's PNG save: the ``call_number``-th save writes part of the file, then the disk is full."""
    real_save = Image.Image.save
    calls = {"n": 0}

    def save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != call_number:
            return real_save(self, fp, *args, **kwargs)
        with open(fp, "wb") if isinstance(fp, (str, os.PathLike)) else fp as handle:
            handle.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError(errno.ENOSPC, FULL)

    return save


# (name, how to break the disk, words the error must carry)
PREFERENCE_FAULTS = {
    "chosen_png_disk_full": (lambda mp: mp.setattr(Image.Image, "save", _png_save_fails_on(1)), FULL),
    "rejected_png_disk_full": (lambda mp: mp.setattr(Image.Image, "save", _png_save_fails_on(2)), FULL),
    "tokens_disk_full": (lambda mp: mp.setattr(pack_weights, "save_file", _disk_full_on_write), FULL),
    "pairs_jsonl_disk_full": (lambda mp: mp.setattr(pack_store.os, "fsync", _disk_full_on_write), FULL),
    "pairs_jsonl_read_only": (lambda mp: mp.setattr(pack_store.os, "replace", _read_only("replace")),
                              "Read-only file system"),
    "png_link_read_only": (lambda mp: (mp.setattr(pack_store.os, "link", _read_only("link")),
                                       mp.setattr(pack_store.os, "replace", _read_only("replace"))),
                           "Read-only file system"),
}


@pytest.fixture
def dataset(tmp_path):
    """A dataset with two pairs already in it (one with visual prompt tokens)."""
    root = tmp_path / "ds"
    store = PreferenceStore(root)
    store.add(_picture(1), _picture(2), "a harbour", "contentment", "sadness")
    store.add(_picture(3), _picture(4), "a mountain", "awe", "fear", _prompt(1), _prompt(2))
    return root


@pytest.mark.parametrize("fault", list(PREFERENCE_FAULTS))
def test_preference_store_fault_is_clear_and_keeps_earlier_pairs(fault, dataset, monkeypatch):
    breaks, words = PREFERENCE_FAULTS[fault]
    before = _snapshot(dataset)
    breaks(monkeypatch)
    with pytest.raises(OSError) as caught:
        PreferenceStore(dataset).add(_picture(5), _picture(6), "a street", "excitement", "sadness", _prompt(3),
                                     _prompt(4))
    monkeypatch.undo()
    message = str(caught.value)
    assert words in message and str(dataset) in message, message
    assert _snapshot(dataset) == before  # earlier rows and images untouched; no temp file, lock or orphan
    assert [p.id for p in read_dataset(dataset).pairs] == ["000001", "000002"]
    assert PreferenceStore(dataset).add(_picture(5), _picture(6), "a street", "excitement").id == "000003"


def test_preference_node_disk_full_mid_batch_keeps_the_pairs_saved_before(pack, tmp_path, monkeypatch):
    import folder_paths
    from emotion_director_pack.nodes.preference import EmotionPreferenceCollector

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path / "output"))
    images = torch.rand(2, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    EmotionPreferenceCollector.execute(images, images.flip(0), "a street", "awe", "fear", "mine")
    root = tmp_path / "output" / "emotion_preferences" / "mine"
    before = _snapshot(root)
    monkeypatch.setattr(Image.Image, "save", _png_save_fails_on(4))  # the second pair's rejected image
    with pytest.raises(OSError, match=FULL) as caught:
        EmotionPreferenceCollector.execute(images, images.flip(0), "a street", "awe", "fear", "mine")
    monkeypatch.undo()
    assert str(root) in str(caught.value)
    after = _snapshot(root)
    assert after.pop("pairs.jsonl").startswith(before.pop("pairs.jsonl"))  # earlier rows kept, one row added
    assert {k: v for k, v in after.items() if k in before} == before  # earlier images byte for byte
    assert [p.id for p in read_dataset(root).pairs] == ["000001", "000002", "000003"]  # the batch's first pair
    assert sorted(set(after) - set(before)) == ["images/000003_chosen.png", "images/000003_rejected.png"]


# --- prompt banks ----------------------------------------------------------------------------------

def _bank(seed: int):
    from emotion_core.bank.store import PROBE_TEXTS, PromptBank

    g = torch.Generator().manual_seed(seed)
    return PromptBank({"awe": torch.randn(2, 8, generator=g)}, {"awe": torch.randn(2, 6, generator=g)},
                      {"awe": torch.tensor([3, 1])}, torch.randn(len(PROBE_TEXTS), 8, generator=g),
                      {"text_encoder": {"file": "clip.safetensors"}})


def _safetensors_disk_full(*_args, **_kwargs):
    from safetensors import SafetensorError

    # what safetensors itself raises when the disk fills up under it
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


BANK_FAULTS = {
    "write_disk_full": (lambda mp: mp.setattr(pack_weights, "save_file", _disk_full_on_write), FULL),
    "safetensors_disk_full": (lambda mp: mp.setattr(pack_weights, "save_file", _safetensors_disk_full), FULL),
    "rename_read_only": (lambda mp: mp.setattr(pack_weights.os, "replace", _read_only("replace")),
                         "Read-only file system"),
}


@pytest.mark.parametrize("fault", list(BANK_FAULTS))
def test_save_bank_fault_is_clear_and_keeps_the_previous_bank(fault, tmp_path, monkeypatch):
    from emotion_core.bank.store import load_bank, save_bank

    path = tmp_path / "banks" / "moods.safetensors"
    save_bank(_bank(0), path)
    previous = path.read_bytes()
    breaks, words = BANK_FAULTS[fault]
    breaks(monkeypatch)
    with pytest.raises(OSError) as caught:
        save_bank(_bank(1), path)
    monkeypatch.undo()
    assert words in str(caught.value) and str(path) in str(caught.value), str(caught.value)
    assert _snapshot(tmp_path) == {"banks/moods.safetensors": previous}
    assert torch.equal(load_bank(path).text_probe, _bank(0).text_probe)


def test_bank_build_cli_disk_full_exits_1_naming_the_file(comfy_models_dir, tmp_path, monkeypatch, capsys):
    import emotion_core.weights as weights
    from emotion_core.cli import main

    for emotion in ("awe", "fear"):
        (tmp_path / "imgs" / emotion).mkdir(parents=True)
        for i in range(2):
            _picture(i).save(tmp_path / "imgs" / emotion / f"scene_{i}.png")
    out = tmp_path / "out" / "bank.safetensors"
    monkeypatch.setattr(weights, "save_file", _safetensors_disk_full)
    clip = comfy_models_dir / "emotion_critic" / "test_clip_b32_zero_shot.safetensors"
    code = main(["bank", "build", "--images", str(tmp_path / "imgs"), "--clip", str(clip), "--out", str(out),
                 "--clusters", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and FULL in err, err  # names the file it could not write (the cache's first file here)
    cache = out.parent / "bank.safetensors.cache"  # the resumable feature cache keeps whole files only
    assert not out.exists() and all(not p.name.endswith(".tmp") for p in out.parent.rglob("*"))
    assert [p for p in out.parent.iterdir() if p != cache] == []


# --- Save Emotion Image -------------------------------------------------------------------------------

IMAGE_FAULTS = {
    "png_disk_full": (lambda mp: mp.setattr(Image.Image, "save", _png_save_fails_on(2)), FULL),
    "link_read_only": (lambda mp: mp.setattr(pack_report.os, "link", _read_only("link")), "Read-only file system"),
}


@pytest.mark.parametrize("fault", list(IMAGE_FAULTS))
def test_save_emotion_image_fault_is_clear_and_keeps_earlier_images(fault, pack, tmp_path, monkeypatch):
    import folder_paths
    from emotion_director_pack.nodes.save_image import EmotionSaveImage

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    images = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    EmotionSaveImage.execute(images, "moods/awe")
    before = _snapshot(tmp_path)
    breaks, words = IMAGE_FAULTS[fault]
    breaks(monkeypatch)
    with pytest.raises(OSError) as caught:
        EmotionSaveImage.execute(torch.cat([images, images]), "moods/awe")
    monkeypatch.undo()
    assert words in str(caught.value) and str(tmp_path / "moods") in str(caught.value), str(caught.value)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    new = sorted(set(after) - set(before))
    # a full disk on the second image keeps the first one whole; a read-only folder takes none
    assert new == (["moods/awe_00002_.png"] if fault == "png_disk_full" else [])
    assert not any(name.endswith(".tmp") for name in after)
