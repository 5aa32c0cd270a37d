"""The real ComfyUI for benchmarks (``COMFYUI_PATH``): its modules on the CPU, this pack's nodes
imported as ComfyUI's custom-node loader imports them, and a diffusers UNet as a ComfyUI
``ModelPatcher`` with the same weights (through ``diffusers_to_ldm`` and ComfyUI's loader).

Benchmarks never use the test stand-ins: without ``COMFYUI_PATH`` they run the pipeline path.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import InvalidInputError

PACK_NAME = "emotion_director_pack"
PACK_ROOT = Path(__file__).resolve().parents[2]


def import_comfyui() -> None:
    """Put ``COMFYUI_PATH`` on ``sys.path`` and set CPU mode before ComfyUI's memory manager loads."""
    path = os.environ.get("COMFYUI_PATH")
    if not path or not (Path(path) / "comfy").is_dir():
        raise InvalidInputError(f"COMFYUI_PATH must name a ComfyUI checkout (a folder with comfy/), got {path!r}")
    if path not in sys.path:
        sys.path.insert(0, path)
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = True


def load_pack(*node_modules: str):
    """This repository as a custom-node package (its root ``__init__.py``) and the given
    ``nodes.<name>`` modules, as ComfyUI loads them."""
    import_comfyui()
    if not (PACK_ROOT / "nodes").is_dir():
        raise InvalidInputError(f"the node pack is not next to emotion_core ({PACK_ROOT}); the ComfyUI path needs "
                                "a checkout of the repository")
    if PACK_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK_NAME, PACK_ROOT / "__init__.py",
                                                      submodule_search_locations=[str(PACK_ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return [importlib.import_module(f"{PACK_NAME}.nodes.{name}") for name in node_modules]


def comfy_model_patcher(unet):
    """ComfyUI's ModelPatcher for a diffusers UNet's weights (ComfyUI detects SD1.5/SDXL from the keys)."""
    import_comfyui()
    import comfy.sd

    from ..diffusers_to_ldm import unet_to_ldm

    return comfy.sd.load_diffusion_model_state_dict(unet_to_ldm(unet.state_dict()))
