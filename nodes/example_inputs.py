"""The example workflows' input pictures (``web/examples/``), put into ComfyUI's input
folder when the pack loads, so a template's Load Image finds its picture as loaded, the
way ComfyUI's own default workflow finds ``input/example.png``. A file the user already
has under the same name is never touched; a folder that cannot be written to only costs
a warning."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import folder_paths

from emotion_core.atomic import link_new, temp_beside

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[1] / "web" / "examples"


def install_example_inputs() -> list[Path]:
    """Copy each example picture into the input folder under its own name where that name
    is free; returns the files copied."""
    input_dir = Path(folder_paths.get_input_directory())
    copied = []
    for source in sorted(EXAMPLES.glob("*.png")):
        target = input_dir / source.name
        if target.exists() or target.is_symlink():
            continue
        try:
            input_dir.mkdir(parents=True, exist_ok=True)
            with temp_beside(target) as tmp:
                shutil.copyfile(source, tmp)
                link_new(tmp, target)
        except FileExistsError:  # appeared meanwhile: the user's file stays
            continue
        except OSError as exc:
            log.warning("Emotion Director: could not copy the example picture %s into %s (%s); copy it there "
                        "yourself to run the example workflows as loaded", source.name, input_dir, exc)
            continue
        copied.append(target)
    return copied
