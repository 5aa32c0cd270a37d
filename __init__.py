"""Emotion Director for ComfyUI.

ComfyUI loads this file as the custom-node package. Registration goes through
the V3 ``comfy_entrypoint`` only (no ``NODE_CLASS_MAPPINGS``), and nothing heavy
is imported until ComfyUI asks for the node list.

The nodes import the core as ``emotion_core``, the same name the CLI, scripts
and tests use, so one process holds one copy of each class (a node checks
``isinstance`` against the same ``EmotionDirection`` a script made).
"""

import importlib.util
import logging
import sys
from pathlib import Path

WEB_DIRECTORY = "./web"
CORE_NAME = "emotion_core"


def _import_core():
    """This pack's ``emotion_core`` under its own name, without adding the pack to ``sys.path``
    (its ``nodes`` folder would shadow ComfyUI's ``nodes`` module)."""
    here = Path(__file__).resolve().parent / CORE_NAME
    loaded = sys.modules.get(CORE_NAME)
    if loaded is not None:
        if Path(loaded.__file__).resolve().parent != here:
            logging.getLogger(__name__).warning(
                "Emotion Director: another emotion_core (%s) was imported before this pack (%s); the pack uses the "
                "one already loaded. Uninstall the other copy if the nodes misbehave.", loaded.__file__, here)
        return loaded
    spec = importlib.util.spec_from_file_location(CORE_NAME, here / "__init__.py", submodule_search_locations=[str(here)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[CORE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[CORE_NAME]
        raise
    return module


_import_core()


async def comfy_entrypoint():
    from .nodes import EmotionDirectorExtension

    return EmotionDirectorExtension()
