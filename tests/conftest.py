"""Test set-up.

- ``emotion_core`` is imported from the repository root.
- Node tests import the repository as a ComfyUI custom-node package (the way
  ComfyUI loads it). Without ``COMFYUI_PATH`` the ComfyUI modules the nodes use
  come from ``tests/comfy_standins``; with it, from the real ComfyUI checkout
  (tests/test_comfy_standins.py then holds the stand-ins to it).
- ``tests`` is on ``sys.path`` for the shared helpers: ``helpers.<module>`` and the tiny
  ComfyUI object stand-ins ``comfy_standins.tiny_models``; ``tools`` is on it for the
  workflow and locale tooling the tests check (``build_workflows``, ``node_locales``, ...).
  No test module imports another: shared fixtures are here.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
PACK_NAME = "emotion_director_pack"

sys.path.insert(0, str(ROOT))
if COMFYUI_PATH:
    sys.path.insert(0, COMFYUI_PATH)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before the first comfy.model_management import: no GPU here
    import folder_paths

    # the pack copies its example pictures into ComfyUI's input folder when it lists its nodes (tests
    # and tools/ alike): a temp folder, so the checkout is never written to
    _comfy_input = tempfile.mkdtemp(prefix="emotion_director_comfy_input_")
    atexit.register(shutil.rmtree, _comfy_input, ignore_errors=True)
    folder_paths.set_input_directory(_comfy_input)
else:
    sys.path.insert(0, str(ROOT / "tests" / "comfy_standins"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))


def load_pack():
    """Import the repository root as a package, exactly as ComfyUI's custom-node loader does."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: on 2 busy cores, thread synchronisation costs more than the ops
    (seconds instead of milliseconds per UNet call); modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_sd_pipeline(tmp_path_factory) -> dict:
    """The tiny diffusers SD pipeline with its image encoder and adapters, written once per
    session (role -> path); tests only read it."""
    from emotion_core.testing.diffusers_assets import write_tiny_sd_pipeline

    return write_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny_sd") / "pipe")


@pytest.fixture(scope="session")
def emoeditor_release_files(tmp_path_factory) -> dict:
    """EmoEditor's three released files in upstream's layouts (``emoeditor_assets``), written
    once per session under a models/ tree (role -> path); tests only read them."""
    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.emoeditor_assets import write_emoeditor_release

    return write_emoeditor_release(tmp_path_factory.mktemp("emoeditor_release") / "models", TEST_FILES)


@pytest.fixture(scope="session")
def tiny_emoeditor_files(tmp_path_factory) -> dict:
    """Tiny EmoEditor files in upstream's released layouts and a source image, for ``edit
    --emoeditor`` (``helpers.emoeditor_tiny``), written once; tests only read them."""
    from helpers.emoeditor_tiny import write_tiny_emoeditor_files

    return write_tiny_emoeditor_files(tmp_path_factory.mktemp("tiny_emoeditor"))


@pytest.fixture(scope="session")
def emoeditor_converted_files(emoeditor_release_files) -> dict:
    """The README's "Reproduce EmoEditor" convert commands, run as written on the released-layout
    test files (their models/ tree stands for ComfyUI/models/); converted role -> path."""
    import shlex

    from emotion_core.cli import main
    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.emoeditor_assets import CONVERTED_ROLES

    models = emoeditor_release_files["emoeditor_release_ip2p"].parents[1]
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Reproduce EmoEditor", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in section.splitlines() if line.startswith("emotion-director convert ")]
    assert len(commands) == 3, commands
    for line in commands:
        argv = [arg.replace("ComfyUI/models/", f"{models}/") for arg in shlex.split(line)[1:]]
        argv[1] = str(models / "emoeditor" / argv[1])  # the downloaded file
        assert main(argv) == 0, line
    return {role: models / TEST_FILES[role] for role in CONVERTED_ROLES}


@pytest.fixture(scope="session")
def eval_critics(tmp_path_factory) -> dict:
    """The five test critic files (``critic_assets``), written once for the ``eval`` tests (role -> path)."""
    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.critic_assets import write_test_critics

    return write_test_critics(tmp_path_factory.mktemp("eval_critics") / "models", TEST_FILES)


@pytest.fixture(scope="session")
def critic_loop_files(tmp_path_factory, tiny_sd_pipeline) -> dict:
    """What the critic-loop commands (edit, generate --critic-loop) run on: the tiny pipeline's
    files plus a CLIP zero-shot critic and a 32x32 noise image (``"image"``), written once."""
    import numpy as np
    from PIL import Image

    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.critic_assets import write_test_critics

    root = tmp_path_factory.mktemp("critic_loop_files")
    critic = write_test_critics(root / "models", TEST_FILES)["critic_clip_b32"]
    image = root / "src.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    return {**tiny_sd_pipeline, "critic": critic, "image": image}


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(scope="session")
def comfy_models_dir(tmp_path_factory):
    """A ComfyUI-style models/ tree with every test model, registered in folder_paths."""
    from emotion_core.testing.assets import make_test_models

    import folder_paths

    models = tmp_path_factory.mktemp("comfy") / "models"
    make_test_models(models)
    load_pack()
    from emotion_director_pack.nodes.model_folders import MODEL_FOLDERS, register_model_folders

    register_model_folders()
    for name in MODEL_FOLDERS:
        folder_paths.add_model_folder_path(name, str(models / name), is_default=True)
    return models


@pytest.fixture(scope="session")
def visual_prompt_nodes(pack, comfy_models_dir) -> dict:
    """The visual prompt nodes by id, with the test adapters in the models folder."""
    from helpers.visual_prompt_models import visual_prompt_node_classes

    return visual_prompt_node_classes(comfy_models_dir)


@pytest.fixture(scope="module")
def tiny_patcher():
    """A runnable tiny SD1.5-style model (7 attn2 blocks) in a ModelPatcher: ComfyUI's own with
    COMFYUI_PATH, the stand-ins without."""
    from helpers.visual_prompt_models import tiny_model_patcher

    return tiny_model_patcher()


@pytest.fixture(scope="session")
def comfyui_server(request, tmp_path_factory):
    """The session's real ComfyUI server (tests/helpers/comfyui_server.py) with this pack and the
    test models; skipped without COMFYUI_PATH, stopped at session end."""
    import shutil

    from helpers.comfyui_server import ComfyUIServer, prepare_base_dir

    if not COMFYUI_PATH:
        pytest.skip("COMFYUI_PATH is not set: no real ComfyUI to test against")
    base_dir = tmp_path_factory.mktemp("comfyui_base")
    # pytest keeps recent temp dirs: drop the ~2 GB of models, keep the log and outputs.
    request.config.add_cleanup(lambda: shutil.rmtree(base_dir / "models", ignore_errors=True))
    prepare_base_dir(base_dir)
    server = ComfyUIServer(COMFYUI_PATH, base_dir)
    server.start()
    request.config.add_cleanup(server.stop)  # cleanups run last-in first-out: stop, then delete
    return server
