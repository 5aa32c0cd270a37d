"""Save Emotion Image: the emotion report in each PNG (``emotion_core.report``) and the node,
on the stand-ins (or, with COMFYUI_PATH, in-process on the real ComfyUI modules), plus a real
server run LoadImage -> Load Emotion Critic -> Emotion Direction -> Save Emotion Image."""

from __future__ import annotations

import errno
import json
import os
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_pack

load_pack()  # the nodes' own emotion_core: values passed to them must be its classes
from emotion_core.critic_loop import Candidates, LoopSettings, run_critic_loop
from emotion_core.direction import make_direction
from emotion_core.errors import InvalidInputError
from emotion_core.report import (PNG_METADATA_KEY, build_report, parse_loop_report, write_metadata_png,
                                 write_new_json, write_new_png)
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.assets import TEST_FILES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = {"1": {"class_type": "EmotionSaveImage", "inputs": {"filename_prefix": "emotion_director"}}}
WORKFLOW = {"nodes": [{"id": 1, "type": "EmotionSaveImage"}], "links": []}
REPORT_KEYS = ["target", "targets", "strength", "seed", "distribution", "top", "source_distribution", "loop",
               "generator"]


def _images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(seed))


def _chunks(path) -> dict:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


@pytest.fixture(scope="module")
def node(pack):
    from emotion_director_pack.nodes.save_image import EmotionSaveImage

    return EmotionSaveImage


@pytest.fixture(scope="module")
def critic(comfy_models_dir):
    from emotion_core.critics import load_critic

    return load_critic(comfy_models_dir / TEST_FILES["critic_clip_b32"])


@pytest.fixture
def output_dir(tmp_path, monkeypatch):
    """ComfyUI's output folder for one test (never the checkout's)."""
    import folder_paths

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def loop_report(critic) -> str:
    """A real Emotion Critic Loop report (two passes of a trivial editor), as the node's output text."""
    source = _images(1, seed=5)

    def generate(seeds, denoise, state):
        return Candidates(torch.stack([(source[0] * (1 - denoise) + 0.5 * denoise) for _ in seeds]))

    result = run_critic_loop(generate, critic.predict, "awe", LoopSettings(ssim_low=0.0, ssim_high=1.0, confidence=1.0,
                                                                          max_iterations=2, candidates=2, seed=11),
                             source=source)
    return json.dumps(result.report)


def _run(node, images, hidden=None, **inputs):
    cls = node if hidden is None else node.PREPARE_CLASS_CLONE(hidden)
    return cls.execute(images, **inputs)


def _saved(out, output_dir) -> list:
    return [output_dir / entry["subfolder"] / entry["filename"] for entry in out.ui["images"]]


def _hidden(prompt=PROMPT, workflow=WORKFLOW) -> dict:
    from comfy_api.latest import io

    return {io.Hidden.prompt: prompt, io.Hidden.extra_pnginfo: None if workflow is None else {"workflow": workflow}}


def test_report_with_critic_direction_and_loop(node, critic, loop_report, output_dir):
    images = _images()
    direction = make_direction("awe:0.75, contentment:0.25", 1.5, [0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1])
    out = _run(node, images, _hidden(), filename_prefix="moods/awe", critic=critic, direction=direction,
               report=loop_report)

    paths = _saved(out, output_dir)
    assert [p.name for p in paths] == ["awe_00001_.png", "awe_00002_.png"]
    assert all(entry == {"filename": p.name, "subfolder": "moods", "type": "output"}
               for entry, p in zip(out.ui["images"], paths))
    reports = json.loads(out.result[0])
    expected = critic.predict(images)
    loop = json.loads(loop_report)
    for k, path in enumerate(paths):
        chunks = _chunks(path)
        report = json.loads(chunks[PNG_METADATA_KEY])
        assert report == reports[k] and list(report) == REPORT_KEYS
        assert report["target"] == "awe" and report["targets"] == {"awe": 0.75, "contentment": 0.25}
        assert report["strength"] == 1.5 and report["generator"] == "Emotion Director"
        assert list(report["distribution"]) == list(EMOTIONS)
        assert list(report["distribution"].values()) == pytest.approx(expected[k].tolist(), abs=1e-5)
        assert report["top"] == EMOTIONS[int(expected[k].argmax())]
        assert list(report["source_distribution"].values()) == pytest.approx([0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1])
        assert report["loop"] == {
            "target": "awe", "passes": loop["passes"], "stopped": loop["stopped"],
            "best_seed": loop["best"]["seed"], "best_denoise": loop["best"]["denoise"],
            "best_ssim": loop["best"]["ssim"], "best_target_probability": loop["best"]["target_probability"],
        }
        assert report["seed"] == loop["best"]["seed"]  # no seed wired: the loop's best candidate's
        assert json.loads(chunks["prompt"]) == PROMPT and json.loads(chunks["workflow"]) == WORKFLOW
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        assert np.abs(pixels - images[k].numpy()).max() <= 0.5 / 255 + 1e-6
    assert str(output_dir) not in out.result[0] and str(output_dir) not in _chunks(paths[0])[PNG_METADATA_KEY]


def test_a_wired_seed_wins_over_the_loop_seed(node, loop_report, output_dir):
    out = _run(node, _images(1), report=loop_report, seed=123456789012)
    (report,) = json.loads(out.result[0])
    assert report["seed"] == 123456789012 and report["loop"]["best_seed"] == json.loads(loop_report)["best"]["seed"]


def test_nothing_optional_connected(node, output_dir):
    out = _run(node, _images(1), _hidden())
    (path,) = _saved(out, output_dir)
    assert path.name == "emotion_director_00001_.png"  # the default prefix
    report = json.loads(_chunks(path)[PNG_METADATA_KEY])
    assert report == {key: None for key in REPORT_KEYS[:-1]} | {"generator": "Emotion Director"}
    assert json.loads(out.result[0]) == [report]


def test_comfy_chunks_follow_hidden_inputs_and_disable_metadata(node, output_dir, monkeypatch):
    from comfy.cli_args import args

    (path,) = _saved(_run(node, _images(1), _hidden(workflow=None)), output_dir)
    assert set(_chunks(path)) == {"prompt", PNG_METADATA_KEY}
    (path,) = _saved(_run(node, _images(1)), output_dir)  # executed without hidden inputs
    assert set(_chunks(path)) == {PNG_METADATA_KEY}
    monkeypatch.setattr(args, "disable_metadata", True)
    (path,) = _saved(_run(node, _images(1), _hidden()), output_dir)
    assert set(_chunks(path)) == {PNG_METADATA_KEY}, "--disable-metadata drops ComfyUI's prompt and workflow"


def test_counter_continues_and_existing_files_are_never_replaced(node, output_dir, monkeypatch):
    import folder_paths

    first = _saved(_run(node, _images(2), filename_prefix="run"), output_dir)
    second = _saved(_run(node, _images(1), filename_prefix="run"), output_dir)
    assert [p.name for p in first + second] == ["run_00001_.png", "run_00002_.png", "run_00003_.png"]
    before = {p: p.read_bytes() for p in first + second}
    real = folder_paths.get_save_image_path

    def stale(prefix, output, width=0, height=0):  # another save took these names after the counter was read
        folder, filename, _, subfolder, prefix = real(prefix, output, width, height)
        return folder, filename, 1, subfolder, prefix

    monkeypatch.setattr(folder_paths, "get_save_image_path", stale)
    third = _saved(_run(node, _images(2, seed=9), filename_prefix="run"), output_dir)
    assert [p.name for p in third] == ["run_00004_.png", "run_00005_.png"]
    assert all(p.read_bytes() == data for p, data in before.items())
    assert sorted(p.name for p in output_dir.iterdir()) == [f"run_0000{i}_.png" for i in range(1, 6)]  # no temp files


def test_write_new_png_is_exclusive_and_atomic(tmp_path, monkeypatch):
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    target = tmp_path / "a.png"
    write_new_png(image, target, {PNG_METADATA_KEY: "{}"})
    original = target.read_bytes()
    with pytest.raises(FileExistsError):
        write_new_png(Image.new("RGB", (8, 8)), target, {PNG_METADATA_KEY: "[]"})
    assert target.read_bytes() == original and os.listdir(tmp_path) == ["a.png"]

    def no_hard_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_hard_links)
    write_new_png(image, tmp_path / "b.png", {PNG_METADATA_KEY: "{}"})
    assert _chunks(tmp_path / "b.png") == {PNG_METADATA_KEY: "{}"}
    with pytest.raises(FileExistsError):
        write_new_png(image, target, {})
    assert target.read_bytes() == original and sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


def test_cli_run_files_use_the_chunk_and_keep_existing_files(tmp_path):
    """``generate`` and ``edit`` write through ``write_metadata_png`` and ``write_new_json``: the
    chunk this node writes, sorted JSON, folders made on the way, existing files kept unless asked."""
    image, png, report = _images(1)[0], tmp_path / "runs" / "a.png", tmp_path / "runs" / "report.json"
    write_metadata_png(image, png, {"seed": 1, "emotion": "awe"})
    assert PNG_METADATA_KEY == "emotion_director"
    assert _chunks(png) == {PNG_METADATA_KEY: '{"emotion": "awe", "seed": 1}'}
    with pytest.raises(FileExistsError):
        write_metadata_png(image, png, {"seed": 2})
    assert json.loads(_chunks(png)[PNG_METADATA_KEY])["seed"] == 1
    write_metadata_png(image, png, {"seed": 2}, replace=True)
    assert json.loads(_chunks(png)[PNG_METADATA_KEY]) == {"seed": 2}

    write_new_json(report, {"passes": 1})
    with pytest.raises(FileExistsError):
        write_new_json(report, {"passes": 2})
    assert json.loads(report.read_text()) == {"passes": 1}
    write_new_json(report, {"passes": 2}, replace=True)
    assert json.loads(report.read_text()) == {"passes": 2}
    assert sorted(os.listdir(png.parent)) == ["a.png", "report.json"], "no temp files left"


@pytest.mark.parametrize("images, message", [
    (torch.zeros(0, 8, 8, 3), "images: the image batch is empty"),
    (torch.full((1, 8, 8, 3), float("nan")), "images: the image contains NaN"),
])
def test_bad_images(node, output_dir, images, message):
    with pytest.raises(InvalidInputError, match=message):
        _run(node, images)
    assert not list(output_dir.iterdir())


@pytest.mark.parametrize("text, message", [
    ("", "report: it is empty"),
    ("best image", "report: not JSON"),
    ("[1, 2]", "report: expected a JSON object"),
    (json.dumps({"target": "awe", "strength": 1.0, "direction": {}, "source": None}),
     "report: this is the Emotion Direction node's report"),
    (json.dumps({"target": "awe", "passes": 2}), r"report: not an Emotion Critic Loop report \(missing stopped, best\)"),
    (json.dumps({"target": "joy", "passes": 1, "stopped": "confident", "best": {"seed": 1, "denoise": 0.5, "ssim": None}}),
     "report: target: unknown emotion 'joy'"),
    (json.dumps({"target": "awe", "passes": 1, "stopped": "confident", "best": {"seed": -1, "denoise": 0.5, "ssim": None}}),
     "report: best seed must be a whole number"),
])
def test_bad_loop_reports(node, output_dir, text, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        _run(node, _images(1), report=text)
    assert "Emotion Critic Loop" in str(caught.value) or "Emotion Direction" in str(caught.value)
    assert not list(output_dir.iterdir())


def test_prefix_outside_the_output_folder(node, output_dir):
    for prefix in ("../escape", "/tmp/escape"):
        with pytest.raises(InvalidInputError, match="filename_prefix .* leaves the output folder"):
            _run(node, _images(1), filename_prefix=prefix)


def test_report_without_loop_or_seed_is_plain(critic):
    direction = make_direction("fear", 0.5)
    report = build_report(direction, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], seed=3)
    assert report["target"] == "fear" and report["top"] == "fear" and report["seed"] == 3
    assert report["source_distribution"] is None and report["loop"] is None
    with pytest.raises(InvalidInputError, match="critic distribution: probabilities must sum to 1"):
        build_report(direction, [0.5] * 8)
    with pytest.raises(InvalidInputError, match="seed must be a whole number"):
        build_report(direction, seed=2 ** 64)
    assert parse_loop_report(json.dumps({"target": "AWE", "passes": 1, "stopped": "confident",
                                         "best": {"seed": 4, "denoise": 1, "ssim": None}}))["target"] == "awe"
    source_pick = parse_loop_report(json.dumps({"target": "awe", "passes": 3, "stopped": "max_iterations",
                                                "best": {"seed": None, "denoise": 0.0, "ssim": 1.0, "source": True}}))
    assert source_pick["best_seed"] is None, "EmoEditor's pick when nothing was accepted: the source, no seed"


def test_schema(node):
    schema = node.define_schema()
    assert schema.node_id == "EmotionSaveImage" and schema.display_name == "Save Emotion Image"
    assert schema.is_output_node
    inputs = {i.id: i for i in schema.inputs}
    assert list(inputs) == ["images", "filename_prefix", "critic", "direction", "report", "seed"]
    assert inputs["filename_prefix"].default == "emotion_director"
    assert all(inputs[name].optional for name in ("critic", "direction", "report", "seed"))
    assert inputs["report"].force_input and inputs["seed"].force_input
    assert [o.id for o in schema.outputs] == ["emotion_report"]


def _test_file_name(role: str) -> str:
    return str(PurePosixPath(TEST_FILES[role]).relative_to(PurePosixPath(TEST_FILES[role]).parts[0]))


@pytest.mark.comfyui
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set")
def test_real_server_saves_the_report(comfyui_server):
    source = (np.asarray(_images(1, 64, seed=3)[0]) * 255).astype(np.uint8)
    Image.fromarray(source, "RGB").save(comfyui_server.input_dir / "emotion_save_source.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "emotion_save_source.png"}},
        "2": {"class_type": "EmotionCriticLoader", "inputs": {"critic_name": _test_file_name("critic_emoeditor")}},
        "3": {"class_type": "EmotionDirection", "inputs": {"target_emotion": "sadness", "strength": 0.8,
                                                           "source_image": ["1", 0], "critic": ["2", 0]}},
        "4": {"class_type": "EmotionSaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "emotion_save/e2e",
                                                           "critic": ["2", 0], "direction": ["3", 0], "seed": 42}},
    }
    # /prompt as the frontend sends it: the workflow travels in extra_pnginfo
    reply = comfyui_server._request("/prompt", {"prompt": prompt, "client_id": comfyui_server.client_id,
                                                "extra_data": {"extra_pnginfo": {"workflow": WORKFLOW}}})
    history = comfyui_server.wait_for(reply["prompt_id"], timeout=300)
    (saved,) = history["outputs"]["4"]["images"]
    assert saved["subfolder"] == "emotion_save" and saved["type"] == "output"
    chunks = _chunks(comfyui_server.output_dir / saved["subfolder"] / saved["filename"])
    report = json.loads(chunks[PNG_METADATA_KEY])
    assert report["target"] == "sadness" and report["strength"] == 0.8 and report["seed"] == 42
    assert list(report["distribution"]) == list(EMOTIONS) and sum(report["distribution"].values()) == pytest.approx(1)
    assert report["top"] in EMOTIONS and list(report["source_distribution"]) == list(EMOTIONS)
    assert report["distribution"] == pytest.approx(report["source_distribution"], abs=1e-3)  # same image, same critic
    assert report["loop"] is None and report["generator"] == "Emotion Director"
    assert json.loads(chunks["prompt"])["4"]["class_type"] == "EmotionSaveImage"
    assert json.loads(chunks["workflow"]) == WORKFLOW
