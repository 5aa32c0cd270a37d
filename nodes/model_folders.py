"""Model folders this pack adds to ComfyUI, registered through ``folder_paths`` so
``extra_model_paths.yaml`` entries with the same names keep working."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from emotion_core.errors import ModelFormatError

# ComfyUI folder name -> extensions listed in that folder's combo.
MODEL_FOLDERS: dict[str, set[str]] = {
    "emotion_critic": {".safetensors", ".sft", ".pt", ".pth", ".bin"},
    "emotion_encoder": {".safetensors", ".sft", ".pt", ".pth", ".bin"},
    "ipadapter": {".safetensors", ".sft", ".bin"},
    "emotion_banks": {".safetensors", ".sft"},
}


def register_model_folders() -> None:
    for name, extensions in MODEL_FOLDERS.items():
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name), is_default=True)
        paths, known = folder_paths.folder_names_and_paths[name]
        folder_paths.folder_names_and_paths[name] = (paths, set(known) | extensions)


def model_files(folder: str) -> list[str]:
    """File names for a combo, sorted; an empty folder gives an empty list."""
    return folder_paths.get_filename_list(folder)


def model_combo(input_id: str, folder: str, fixed: tuple[str, ...] = (), **options) -> io.Combo.Input:
    """A combo of ``fixed`` choices (e.g. "none") then the files of a model folder. The input
    remembers its folder (``model_folder``), so the input check looks a name that is not listed
    up there and its error names the folders searched."""
    combo = io.Combo.Input(input_id, options=[*fixed, *model_files(folder)], **options)
    combo.model_folder = folder
    return combo


def model_path(folder: str, name: str) -> str:
    """Full path of a combo value, with a clear error if it is gone or escapes its folder."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        shown = str(name) if len(str(name)) <= 80 else f"{str(name)[:80]}... ({len(str(name))} characters)"
        raise ModelFormatError(f"{shown!r} not found in models/{folder} (searched: {searched})")
    return path
