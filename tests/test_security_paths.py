"""Security: names that come from workflows, datasets or model metadata cannot leave their folders.

- Model combo values (``nodes.model_folders.model_path``, used by every loader node and for a
  bank's text-tower file): ``..``, absolute paths and mixtures are folded back into the
  model folder exactly as ComfyUI's ``folder_paths.get_full_path`` does (checked against the
  real module when the checkout is present). A symlink the *server owner* placed in a model
  folder is followed, as ComfyUI's own loaders follow it (shared model stores rely on it);
  a workflow cannot create one.
- Names inside downloaded files (a probe's ``backbone_file``, dataset rows' image and token
  paths) must resolve — symlinks included — inside their folder.
- Outputs: Save Emotion Image's ``filename_prefix`` and the preference collector's dataset
  name stay under ComfyUI's output folder (symlinks out refused for datasets), and nothing
  is written outside when they are refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import load_pack

load_pack()
from emotion_core import errors as pack_errors  # noqa: E402

from emotion_core import errors  # noqa: E402

CLEAR_ERRORS = (errors.InvalidInputError, pack_errors.InvalidInputError)
COMFYUI_CHECKOUT = Path(os.environ.get("COMFYUI_PATH") or "/work/comfyui")

ESCAPING_NAMES = ["../outside.safetensors", "../../outside.safetensors", "sub/../../outside.safetensors",
                  "./../outside.safetensors", "..//outside.safetensors", "sub/../../../outside.safetensors"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def model_tree(tmp_path, monkeypatch):
    """models/emotion_critic/{inside.safetensors, sub/deep.safetensors, link -> ../outside}, plus outside files."""
    import folder_paths

    folder = tmp_path / "models" / "emotion_critic"
    (folder / "sub").mkdir(parents=True)
    (folder / "inside.safetensors").write_bytes(b"in")
    (folder / "sub" / "deep.safetensors").write_bytes(b"deep")
    (tmp_path / "models" / "outside.safetensors").write_bytes(b"out")
    (tmp_path / "outside.safetensors").write_bytes(b"out")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.safetensors").write_bytes(b"secret")
    (folder / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")
    (folder / "linkdir").symlink_to(secret, target_is_directory=True)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "emotion_critic", ([str(folder)], {".safetensors"}))
    return folder


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_model_path_dot_dot_stays_in_the_folder(model_tree, name):
    from emotion_director_pack.nodes.model_folders import model_path

    with pytest.raises(CLEAR_ERRORS, match="not found in models/emotion_critic"):
        model_path("emotion_critic", name)  # folded to emotion_critic/outside.safetensors, which does not exist
    (model_tree / "outside.safetensors").write_bytes(b"decoy")
    resolved = Path(model_path("emotion_critic", name))
    assert resolved.parent == model_tree and resolved.read_bytes() == b"decoy"


def test_model_path_absolute_names_stay_in_the_folder(model_tree, tmp_path):
    from emotion_director_pack.nodes.model_folders import model_path

    outside = tmp_path / "outside.safetensors"
    for name in (str(outside), str(model_tree.parent / "outside.safetensors"), "/etc/passwd", "//etc/passwd"):
        with pytest.raises(CLEAR_ERRORS):
            model_path("emotion_critic", name)
    # An absolute name that happens to exist inside the folder tree is still read from inside it.
    (model_tree / outside.relative_to("/")).parent.mkdir(parents=True)
    (model_tree / outside.relative_to("/")).write_bytes(b"inner copy")
    assert Path(model_path("emotion_critic", str(outside))).read_bytes() == b"inner copy"


def test_model_path_plain_and_nested_names(model_tree):
    from emotion_director_pack.nodes.model_folders import model_files, model_path

    assert Path(model_path("emotion_critic", "sub/deep.safetensors")).read_bytes() == b"deep"
    assert "inside.safetensors" in model_files("emotion_critic")
    for name in ("", ".", "sub", "missing.safetensors", "inside.safetensors\x00.txt"):
        with pytest.raises((*CLEAR_ERRORS, ValueError)):
            model_path("emotion_critic", name)


def test_owner_symlinks_are_followed_like_comfyui(model_tree):
    """Symlinks in a model folder are the server owner's choice (ComfyUI lists and loads them too)."""
    from emotion_director_pack.nodes.model_folders import model_files, model_path

    assert Path(model_path("emotion_critic", "link.safetensors")).read_bytes() == b"out"
    assert "linkdir/key.safetensors" in model_files("emotion_critic")
    # but a dangling link or '..' through a linked folder finds nothing outside
    (model_tree / "dangling.safetensors").symlink_to(model_tree / "nowhere.safetensors")
    for name in ("dangling.safetensors", "linkdir/../outside.safetensors"):
        with pytest.raises(CLEAR_ERRORS):
            model_path("emotion_critic", name)


def _real_folder_paths():
    """ComfyUI's own ``folder_paths`` module, loaded privately (its ``comfy.cli_args`` import answered
    with defaults), so the stand-in can be compared with it."""
    source = COMFYUI_CHECKOUT / "folder_paths.py"
    if not source.is_file():
        pytest.skip("no ComfyUI checkout to compare folder_paths with")
    args = types.SimpleNamespace(base_directory=None, output_directory=None, temp_directory=None,
                                 input_directory=None, user_directory=None)
    cli_args = types.ModuleType("comfy.cli_args")
    cli_args.args = args
    saved = sys.modules.get("comfy.cli_args")
    sys.modules["comfy.cli_args"] = cli_args
    try:
        spec = importlib.util.spec_from_file_location("_real_comfy_folder_paths", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("comfy.cli_args", None)
        else:
            sys.modules["comfy.cli_args"] = saved
    return module


def test_standin_get_full_path_mirrors_comfyui(model_tree, tmp_path):
    import folder_paths

    real = _real_folder_paths()
    real.folder_names_and_paths["emotion_critic"] = ([str(model_tree)], {".safetensors"})
    (model_tree / "dangling.safetensors").symlink_to(model_tree / "nowhere.safetensors")
    names = [*ESCAPING_NAMES, "inside.safetensors", "sub/deep.safetensors", "link.safetensors", "linkdir/key.safetensors",
             "dangling.safetensors", "linkdir/../inside.safetensors", str(tmp_path / "outside.safetensors"), "/etc/passwd",
             "sub", "", "missing.safetensors"]
    for name in names:
        assert folder_paths.get_full_path("emotion_critic", name) == real.get_full_path("emotion_critic", name), name
    assert folder_paths.get_full_path("no_such_folder", "x") is None is real.get_full_path("no_such_folder", "x")


def test_prompt_bank_text_encoder_name_stays_in_the_critic_folder(model_tree):
    """A bank file's stored text-tower name (from whoever built the bank) is looked up like a combo value."""
    from emotion_director_pack.nodes.prompt_bank import text_encoder_path

    (model_tree.parent / "outside.safetensors").write_bytes(b"out")
    for name in ("../outside.safetensors", str(model_tree.parent / "outside.safetensors")):
        with pytest.raises(CLEAR_ERRORS, match="open_clip file"):
            text_encoder_path(name)


def test_probe_backbone_file_cannot_leave_the_critic_folder(tmp_path):
    """A probe's sidecar names its backbone; ``..``, absolute names and symlinks out are refused."""
    from emotion_core.critics import load_critic
    from emotion_core.weights import save_safetensors

    folder = tmp_path / "critics"
    folder.mkdir()
    save_safetensors({"w": torch.zeros(1)}, tmp_path / "outside.safetensors")
    (folder / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")
    for index, backbone in enumerate(["../outside.safetensors", str(tmp_path / "outside.safetensors"),
                                      "link.safetensors"]):
        head = save_safetensors({"fc.weight": torch.zeros(8, 768), "fc.bias": torch.zeros(8)},
                                folder / f"probe{index}.safetensors",
                                {"kind": "clip_probe", "layout": "emogen", "backbone_file": backbone})
        with pytest.raises(errors.ModelFormatError, match="outside"):
            load_critic(head)


# Preference datasets


DATASET_ESCAPES = ["..", "../x", "../../x", "a/../../x", "a/..", "/tmp/x", "//x", ".", "", "a/./b", "x/", "C:\\x",
                   "a\\..\\..\\x", "~/x", "a/../b", "x\x00y", "-"]


@pytest.mark.parametrize("name", DATASET_ESCAPES)
def test_dataset_names_cannot_leave_the_root(tmp_path, name):
    from emotion_core.preference import safe_dataset_dir

    root = tmp_path / "emotion_preferences"
    try:
        path = safe_dataset_dir(root, name)
    except errors.InvalidInputError as exc:
        assert repr(name) in str(exc)
        return
    assert root.resolve() in path.parents, name  # the few accepted odd names still land inside


def test_dataset_name_through_a_symlink_out_is_refused(tmp_path):
    from emotion_core.preference import safe_dataset_dir

    root = tmp_path / "emotion_preferences"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for name in ("link", "link/x"):
        with pytest.raises(errors.InvalidInputError, match="outside"):
            safe_dataset_dir(root, name)
    assert safe_dataset_dir(root, "ok/sub") == root.resolve() / "ok" / "sub"


def test_preference_collector_node_writes_nothing_outside(tmp_path, monkeypatch):
    import folder_paths

    from emotion_director_pack.nodes.preference import EmotionPreferenceCollector

    output = tmp_path / "output"
    (output / "emotion_preferences").mkdir(parents=True)
    (output / "emotion_preferences" / "link").symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(output))
    images = torch.rand(1, 16, 16, 3)
    before = _files(tmp_path)
    for name in ["../x", "../../x", str(tmp_path / "abs"), "a/../../x", "link", "link/x"]:
        with pytest.raises(CLEAR_ERRORS):
            EmotionPreferenceCollector.execute(chosen=images, rejected=images, prompt="p", target_emotion="awe",
                                               negative_emotion="none", dataset=name)
    assert _files(tmp_path) == before


def _dataset_with_rows(root: Path, rows: list) -> None:
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(root / "images" / f"{name}.png")
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_dataset_rows_cannot_point_outside(tmp_path):
    from emotion_core.preference import read_dataset

    root = tmp_path / "data"
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    good = {"chosen": "images/a.png", "rejected": "images/b.png", "prompt": "p", "target_emotion": "awe"}
    escapes = ["../secret.png", str(tmp_path / "secret.png"), "images/../../secret.png", "link.png"]
    rows = [good] + [{**good, "chosen": bad} for bad in escapes] + [
        {**good, "visual_prompts": {"positive": {"tokens": "../secret.png", "role": "positive"}}},
        {**good, "visual_prompts": {"positive": {"images": ["../secret.png"]}}}]
    _dataset_with_rows(root, rows)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    result = read_dataset(root)
    assert len(result.pairs) == 1 and len(result.skipped) == len(rows) - 1
    assert all("outside" in why or "relative path" in why for _, why in result.skipped)


def test_emopair_rows_cannot_point_outside(tmp_path):
    from emotion_core.preference import read_dataset

    root = tmp_path / "data"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    Image.new("RGB", (8, 8)).save(root / "ok.png")
    row = {"img_src_path": "ok.png", "img_tgt_path": "ok.png", "class_source": "fear", "class_target": "awe",
           "prompt": "p"}
    rows = [row, {**row, "img_tgt_path": "../secret.png"}, {**row, "img_src_path": str(tmp_path / "secret.png")}]
    (root / "pairs.json").write_text(json.dumps(rows))
    result = read_dataset(root)
    assert result.layout == "emopair" and len(result.pairs) == 1 and len(result.skipped) == 2


# Save Emotion Image


PREFIX_ESCAPES = ["../x", "../../x", "a/../../x", "..", "/tmp/x", "//x", "./../x", "%width%/../../x"]


def test_save_image_prefix_cannot_leave_the_output_folder(tmp_path, monkeypatch):
    import folder_paths

    from emotion_director_pack.nodes.save_image import EmotionSaveImage

    output = tmp_path / "output"
    output.mkdir()
    monkeypatch.setattr(folder_paths, "output_directory", str(output))
    before = _files(tmp_path)
    for prefix in PREFIX_ESCAPES:
        with pytest.raises(CLEAR_ERRORS, match="leaves the output folder"):
            EmotionSaveImage.execute(torch.rand(1, 8, 8, 3), filename_prefix=prefix)
    assert _files(tmp_path) == before
    out = EmotionSaveImage.execute(torch.rand(1, 8, 8, 3), filename_prefix="moods/a/../awe")
    (entry,) = out.ui["images"]
    assert (output / entry["subfolder"] / entry["filename"]).is_file() and entry["subfolder"] == "moods"
