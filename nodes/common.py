"""What several nodes share: the menu category, emotion combos, running a critic on ComfyUI's
device, and models cached per file."""

from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from emotion_core.critics import EmotionCritic
from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch
from emotion_core.taxonomy import EMOTIONS

CATEGORY = "Emotion Director"
Model = TypeVar("Model")


def run_critic(critic: EmotionCritic, images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Probabilities ``[B,8]`` (canonical order, on CPU), computed on ComfyUI's device;
    the critic goes back to the CPU afterwards so it holds no VRAM between runs.
    ``name`` is the input the images came from, for error messages."""
    if not callable(getattr(critic, "predict", None)):
        raise InvalidInputError(f"critic: expected an EMOTION_CRITIC (Load Emotion Critic), got {type(critic).__name__}")
    images = as_rgb_batch(images, name)
    device = mm.get_torch_device()
    critic.to(device)
    try:
        return critic.predict(images)
    finally:
        critic.to(mm.unet_offload_device())


def emotion_combo(input_id: str, fixed: tuple[str, ...] = (), **options) -> io.Combo.Input:
    """A combo of ``fixed`` choices (e.g. "none") then the eight emotions. Emotion names are
    case-insensitive everywhere in the pack, so the input check accepts "Awe" from an API prompt."""
    combo = io.Combo.Input(input_id, options=[*fixed, *EMOTIONS], **options)
    combo.any_case = True
    return combo


def cached_load(loader: Callable[[str], Model], maxsize: int) -> Callable[[str], Model]:
    """``loader`` with the last ``maxsize`` results kept while their files are unchanged
    (same path, modification time and size): re-running a graph reads nothing, an edited
    file is read again, and the cache never grows past ``maxsize`` models."""

    @functools.lru_cache(maxsize=maxsize)
    def load_file_state(path: str, mtime_ns: int, size: int) -> Model:
        return loader(path)

    @functools.wraps(loader)
    def load(path: str) -> Model:
        stat = os.stat(path)
        return load_file_state(path, stat.st_mtime_ns, stat.st_size)

    load.cache_info = load_file_state.cache_info
    load.cache_clear = load_file_state.cache_clear
    return load
