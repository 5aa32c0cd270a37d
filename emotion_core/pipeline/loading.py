"""Load an SD1.5-family model as a diffusers ``StableDiffusionPipeline``, offline.

Two sources:
- a diffusers-format folder (``model_index.json`` + component folders), read with
  ``from_pretrained(..., local_files_only=True)``;
- an original-layout ``.safetensors`` checkpoint (what ComfyUI loads), read with
  diffusers' own ``from_single_file`` and component configs written locally
  from the checkpoint's tensor shapes (``single_file``), so no hub config is needed.

The safety checker is never loaded (this is a research/art tool; ComfyUI has none
either), and nothing here downloads.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..errors import InvalidInputError, ModelFormatError
from ..weights import SAFETENSORS_SUFFIXES

log = logging.getLogger(__name__)

SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def _check_folder(folder: Path) -> None:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelFormatError(f"{folder}: not a diffusers pipeline folder (no model_index.json); pass a folder saved "
                               "with save_pretrained, or an original-layout .safetensors checkpoint")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{index_file}: unreadable model_index.json ({exc})") from exc
    name = index.get("_class_name")
    if name not in SUPPORTED_PIPELINES:
        raise ModelFormatError(f"{folder}: a {name} folder; this command runs SD1.5-family models "
                               f"({', '.join(SUPPORTED_PIPELINES)})")
    missing = [c for c in REQUIRED_COMPONENTS if not isinstance(index.get(c), list) or index[c][0] is None
               or not (folder / c).is_dir()]
    if missing:
        raise ModelFormatError(f"{folder}: missing pipeline component folder(s) {missing}")


def _from_folder(folder: Path, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline

    _check_folder(folder)
    try:
        return StableDiffusionPipeline.from_pretrained(
            str(folder), local_files_only=True, dtype=dtype, safety_checker=None, feature_extractor=None,
            image_encoder=None, requires_safety_checker=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"{folder}: cannot load the diffusers pipeline ({exc})") from exc


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-component progress bars from diffusers/transformers while loading local files
    (they take a moment and would bury the sampling bar and error lines); restored after."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_on = diffusers_logging.is_progress_bar_enabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if diffusers_on:
            diffusers_logging.enable_progress_bar()
        if transformers_on:
            transformers_logging.enable_progress_bar()


def load_pipeline(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """A ``StableDiffusionPipeline`` on ``device`` in ``dtype``, in eval mode without gradients."""
    path = Path(path)
    if path.is_dir():
        with quiet_loading():
            pipe = _from_folder(path, dtype)
    elif path.is_file() and path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from .single_file import load_single_file

        with quiet_loading():
            pipe = load_single_file(path, dtype)
    elif path.is_file():
        raise InvalidInputError(f"{path}: a model must be a diffusers folder or an original-layout .safetensors "
                                f"checkpoint, got a {path.suffix or 'suffix-less'} file (convert pickled "
                                "checkpoints with `emotion-director convert` first)")
    else:
        raise InvalidInputError(f"model not found: {path}")
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s, %s)", path.name, type(pipe.scheduler).__name__, dtype)
    return pipe.to(device)
