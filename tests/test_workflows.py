"""The example workflows: every node type known, every link type-correct, widget values
valid, UI and API twins equivalent; with COMFYUI_PATH, every API twin runs in a real
ComfyUI on CPU with the test models (sizes and steps shrunk for CPU)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import PurePosixPath

import pytest

from build_workflows import CORE_FILE_INPUTS, CORE_SPECS, EXAMPLE_IMAGE, GRAPHS, WORKFLOWS, core_node_infos
from conftest import ROOT
from emotion_core.testing.assets import TEST_FILES
from workflow_graph import check_ui, spec_from_schema, spec_from_v1, ui_to_api, without_notes

NAMES = sorted(GRAPHS)


def _ui(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def _api(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def specs(pack, comfy_models_dir):
    from emotion_director_pack.nodes import EmotionDirectorExtension

    found = {}
    for cls in asyncio.run(EmotionDirectorExtension().get_node_list()):
        schema = cls.define_schema()
        found[schema.node_id] = spec_from_schema(schema)
    core = json.loads(CORE_SPECS.read_text())
    found.update({t: spec_from_v1(t, info, CORE_FILE_INPUTS.get(t)) for t, info in core.items()})
    return found


@pytest.fixture(scope="module")
def asset_files() -> dict[str, set[str]]:
    files: dict[str, set[str]] = {"input": {EXAMPLE_IMAGE}}
    for path in TEST_FILES.values():
        folder, *rest = PurePosixPath(path).parts
        files.setdefault(folder, set()).add(str(PurePosixPath(*rest)))
    return files


def test_every_workflow_file_has_a_twin_and_a_graph():
    ui_names = {p.stem for p in WORKFLOWS.glob("*.json")}
    api_names = {p.stem for p in (WORKFLOWS / "api").glob("*.json")}
    thumbnails = {p.stem for p in WORKFLOWS.glob("*.jpg")}  # tools/render_workflow_thumbnails.py
    assert ui_names == api_names == thumbnails == set(NAMES)
    assert (ROOT / "web" / "examples" / EXAMPLE_IMAGE).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_matches_the_node_schemas(name, specs, asset_files):
    problems = check_ui(without_notes(_ui(name)), specs, asset_files)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_twins_are_the_same_graph(name, specs):
    assert ui_to_api(without_notes(_ui(name)), specs) == _api(name)


@pytest.mark.parametrize("name", NAMES)
def test_files_are_what_the_builder_writes(name):
    """The committed API twin is the graph defined in tools/build_workflows.py (edit that, then rebuild)."""
    assert _api(name) == json.loads(json.dumps(GRAPHS[name]().api))


def test_checker_catches_broken_workflows(specs, asset_files):
    ui = without_notes(_ui("emotion_quickstart"))
    broken = copy.deepcopy(ui)
    direction = next(n for n in broken["nodes"] if n["type"] == "EmotionDirection")
    direction["widgets_values"][0] = "joy"
    sampler = next(n for n in broken["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] = 0  # steps below 1
    link = next(link for link in broken["links"] if link[5] == "CONDITIONING")
    broken["links"][broken["links"].index(link)] = [*link[:5], "LATENT"]
    broken["nodes"].append({**direction, "id": 99, "type": "NoSuchNode"})
    problems = "\n".join(check_ui(broken, specs, asset_files))
    assert "'joy' is not one of" in problems
    assert "steps: 0 is outside" in problems
    assert "takes CONDITIONING (link says LATENT)" in problems
    assert "NoSuchNode): unknown node type" in problems


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set")
def test_core_spec_snapshot_matches_this_comfyui():
    snapshot = json.loads(CORE_SPECS.read_text())
    assert core_node_infos(set(snapshot)) == snapshot


# The tiny test text encoders in place of a workflow's CLIP loaders: ComfyUI's loader nodes build
# CLIP-G and T5-XXL at full size (tests/helpers/comfy_test_nodes), so for SDXL/Flux graphs the
# CLIP comes from ComfyUI's own encoder classes built small; everything else runs as written.
TINY_CLIP_LOADER = "EmotionDirectorTestTinyCLIPLoader"
SDXL_CHECKPOINT = PurePosixPath(TEST_FILES["checkpoint_sdxl"]).name


def _with_tiny_text_encoders(api: dict) -> dict:
    api = copy.deepcopy(api)
    for node_id, entry in list(api.items()):
        if entry["class_type"] == "DualCLIPLoader":
            api[node_id] = {"class_type": TINY_CLIP_LOADER, "inputs": {"family": entry["inputs"]["type"]}}
        elif entry["class_type"] == "CheckpointLoaderSimple" and entry["inputs"]["ckpt_name"] == SDXL_CHECKPOINT:
            clip_id = f"{node_id}_tiny_clip"
            api[clip_id] = {"class_type": TINY_CLIP_LOADER, "inputs": {"family": "sdxl"}}
            for other in api.values():
                for name, value in other["inputs"].items():
                    if value == [node_id, 1]:
                        other["inputs"][name] = [clip_id, 0]
    return api


def _shrink_for_cpu(api: dict) -> dict:
    """64x64 latents, two steps (presets such as EmoEditor mode keep their own) and two critic
    loop passes: the graph is the same, the run takes seconds to minutes on CPU."""
    api = _with_tiny_text_encoders(api)
    for entry in api.values():
        inputs = entry["inputs"]
        if entry["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage"):
            inputs.update(width=64, height=64)
        for name, cap in (("steps", 2), ("max_iterations", 2)):
            if name in inputs and not isinstance(inputs[name], list):
                inputs[name] = min(inputs[name], cap)
    return api


@pytest.mark.comfyui
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set")
@pytest.mark.parametrize("name", NAMES)
def test_api_twin_runs_in_real_comfyui(name, comfyui_server):
    # nothing is copied by hand: the pack put its example picture into input/ when ComfyUI started
    assert (comfyui_server.input_dir / EXAMPLE_IMAGE).read_bytes() == (ROOT / "web" / "examples" / EXAMPLE_IMAGE).read_bytes()
    entry = comfyui_server.run(_shrink_for_cpu(_api(name)), timeout=900)
    saved = [image for output in entry["outputs"].values() for image in output.get("images", [])
             if image.get("type") == "output"]
    assert saved, f"{name} saved no image"
    for image in saved:
        assert (comfyui_server.output_dir / image["subfolder"] / image["filename"]).is_file()
