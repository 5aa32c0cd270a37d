"""Stand-in for ComfyUI's ``folder_paths``: the model-folder registry the nodes use."""

from __future__ import annotations

import os
import tempfile

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
base_path = os.environ.get("EMOTION_DIRECTOR_STANDIN_BASE") or tempfile.mkdtemp(prefix="comfy_standin_")
models_dir = os.path.join(base_path, "models")
output_directory = os.path.join(base_path, "output")
input_directory = os.path.join(base_path, "input")
temp_directory = os.path.join(base_path, "temp")
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {
    "clip_vision": ([os.path.join(models_dir, "clip_vision")], supported_pt_extensions),
    "checkpoints": ([os.path.join(models_dir, "checkpoints")], supported_pt_extensions),
}


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    if folder_name in folder_names_and_paths:
        paths = folder_names_and_paths[folder_name][0]
        if full_folder_path not in paths:
            paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name: str) -> list[str]:
    paths, extensions = folder_names_and_paths[folder_name]
    found = set()
    for folder in paths:
        for root, _dirs, files in os.walk(folder, followlinks=True):
            for name in files:
                if not extensions or os.path.splitext(name)[1].lower() in extensions:
                    found.add(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(found)


def get_full_path(folder_name: str, filename: str) -> str | None:
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        full_path = os.path.join(folder, filename)
        if os.path.isfile(full_path):
            return full_path
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_output_directory() -> str:
    return output_directory


def get_input_directory() -> str:
    return input_directory


def get_temp_directory() -> str:
    return temp_directory


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0) -> tuple[str, str, int, str, str]:
    """As in ComfyUI: ``(folder, file name, next counter, subfolder, prefix)``; the counter follows
    the highest ``<prefix>_<NNNNN>_`` file there; a prefix leaving ``output_dir`` is refused."""
    filename_prefix = filename_prefix.replace("%width%", str(image_width)).replace("%height%", str(image_height))
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")

    def map_filename(name: str) -> tuple[int, str]:
        prefix_len = len(os.path.basename(filename_prefix))
        try:
            digits = int(name[prefix_len + 1:].split("_")[0])
        except ValueError:
            digits = 0
        return digits, name[:prefix_len + 1]

    try:
        counter = max(d for d, p in map(map_filename, os.listdir(full_output_folder))
                      if os.path.normcase(p[:-1]) == os.path.normcase(filename) and p[-1:] == "_") + 1
    except ValueError:
        counter = 1
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return full_output_folder, filename, counter, subfolder, filename_prefix
