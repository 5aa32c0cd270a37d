"""Model folders this pack adds to ComfyUI, registered through ``folder_paths`` so
``extra_model_paths.yaml`` entries with the same names keep working."""

from __future__ import annotations

import os

import folder_paths

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


class ModelFileOptions(list):
    """A combo's options listed from a model folder (after any fixed choices such as "none").
    A value that is not listed is looked up in ``folder``, so a missing file is reported with
    the folders searched rather than as a bare "not in the list"."""

    def __init__(self, folder: str, names: list[str]):
        super().__init__(names)
        self.folder = folder


def model_files(folder: str, fixed: tuple[str, ...] = ()) -> ModelFileOptions:
    """Options for a model combo: ``fixed`` choices, then the folder's file names, sorted
    (an empty folder gives just the fixed choices)."""
    return ModelFileOptions(folder, [*fixed, *folder_paths.get_filename_list(folder)])


def model_path(folder: str, name: str) -> str:
    """Full path of a combo value, with a clear error if it is gone or escapes its folder."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        shown = str(name) if len(str(name)) <= 80 else f"{str(name)[:80]}... ({len(str(name))} characters)"
        raise ModelFormatError(f"{shown!r} not found in models/{folder} (searched: {searched})")
    return path
