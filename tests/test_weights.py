"""Safe weight I/O: safetensors, weights-only pickle, refusal of code-running pickles."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch
from helpers.malicious_pickle import write_malicious

from emotion_core.critics import load_critic
from emotion_core.errors import ModelFormatError, UnsafeCheckpointError
from emotion_core.weights import load_state_dict, read_metadata, resolve_inside, save_safetensors


def _tensors():
    return {"fc.weight": torch.arange(32.0).view(8, 4), "fc.bias": torch.zeros(8)}


def test_safetensors_round_trip_with_metadata(tmp_path):
    path = save_safetensors(_tensors(), tmp_path / "sub" / "h.safetensors", {"kind": "clip_probe", "layout": "emogen"})
    assert sorted(os.listdir(path.parent)) == ["h.safetensors"]  # no temp file left behind
    loaded = load_state_dict(path)
    assert torch.equal(loaded["fc.weight"], _tensors()["fc.weight"])
    assert read_metadata(path) == {"kind": "clip_probe", "layout": "emogen"}


def test_sidecar_overrides_header(tmp_path):
    path = save_safetensors(_tensors(), tmp_path / "h.safetensors", {"kind": "clip_probe", "layout": "emogen"})
    path.with_suffix(".json").write_text(json.dumps({"layout": "emoedit", "backbone_file": "b.safetensors"}))
    assert read_metadata(path) == {"kind": "clip_probe", "layout": "emoedit", "backbone_file": "b.safetensors"}


def test_invalid_sidecar_json(tmp_path):
    path = save_safetensors(_tensors(), tmp_path / "h.safetensors")
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelFormatError, match=r"h\.json"):
        read_metadata(path)


def test_truncated_safetensors(tmp_path):
    path = save_safetensors(_tensors(), tmp_path / "h.safetensors", {"kind": "clip_probe"})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ModelFormatError, match="truncated"):
        load_state_dict(path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ModelFormatError):
        read_metadata(path)


def test_torch_save_state_dict_loads_weights_only(tmp_path):
    torch.save(_tensors(), tmp_path / "plain.pt")
    torch.save({"state_dict": _tensors(), "epoch": 3}, tmp_path / "nested.pth")
    torch.save({f"module.{k}": v for k, v in _tensors().items()}, tmp_path / "parallel.bin")
    for name in ("plain.pt", "nested.pth", "parallel.bin"):
        loaded = load_state_dict(tmp_path / name)
        assert sorted(loaded) == ["fc.bias", "fc.weight"], name


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write_malicious(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        load_state_dict(path)
    with pytest.raises(UnsafeCheckpointError):
        load_critic(path)
    assert not marker.exists()
    load_state_dict(path, trust_pickle=True)  # control: the payload does run when trusted
    assert marker.exists()


def test_trusted_full_pickle_loads(tmp_path):
    path = tmp_path / "train.ckpt"
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": _tensors()}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict(path)
    assert sorted(load_state_dict(path, trust_pickle=True)) == ["fc.bias", "fc.weight"]


def test_corrupt_pickle_and_unknown_suffix(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFormatError):
        load_state_dict(tmp_path / "bad.pt")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="unsupported"):
        load_state_dict(tmp_path / "w.npz")
    with pytest.raises(ModelFormatError, match="not found"):
        load_state_dict(tmp_path / "missing.safetensors")


def test_resolve_inside(tmp_path):
    assert resolve_inside(tmp_path, "a.safetensors") == (tmp_path / "a.safetensors").resolve()
    with pytest.raises(ModelFormatError, match="outside"):
        resolve_inside(tmp_path / "critics", "../x.safetensors")
    (tmp_path / "critics").mkdir()
    (tmp_path / "critics" / "link.safetensors").symlink_to(tmp_path / "x.safetensors")
    with pytest.raises(ModelFormatError, match="outside"):
        resolve_inside(tmp_path / "critics", "link.safetensors")
