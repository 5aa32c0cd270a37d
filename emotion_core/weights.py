"""Safe weight I/O: safetensors, or ``torch.load(weights_only=True)``; never full pickle
unless a caller explicitly trusts the file (``convert --trust-pickle``)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import all_or_nothing, temp_beside
from .errors import ModelFormatError, UnsafeCheckpointError

log = logging.getLogger(__name__)

METADATA_KEY = "emotion_director"
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Keys under which training scripts commonly nest the real state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module")


def flatten_nested(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Nested dicts of tensors -> flat ``prefix.key`` (e.g. the public IP-Adapter .bin files'
    ``{"image_proj": {...}, "ip_adapter": {...}}``); non-tensor leaves are dropped."""
    flat: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if isinstance(value, Mapping):
            for inner, tensor in flatten_nested(value).items():
                flat[f"{key}.{inner}"] = tensor
        elif isinstance(value, torch.Tensor):
            flat[key] = value
    return flat


def _flatten_checkpoint(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelFormatError(f"{path.name}: expected a state dict of tensors, found {type(obj).__name__}")
    tensors = flatten_nested(obj)
    if not tensors:
        raise ModelFormatError(f"{path.name}: the checkpoint holds no tensors")
    if all(k.startswith("module.") for k in tensors):  # saved from DataParallel
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _load_pickle(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f"{path.name} needs full pickle to load, which can run arbitrary code; it was refused. "
                "If you trust its source, convert it once with "
                "`emotion-director convert IN OUT.safetensors --trust-pickle` and use the safetensors file."
            ) from exc
        log.warning("unpickling %s with full pickle because --trust-pickle was given", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 - explicit opt-in
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt?): {exc}") from exc
    return _flatten_checkpoint(obj, path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """This project's metadata for a weight file: the safetensors header entry
    ``emotion_director`` (JSON) merged with a ``<stem>.json`` sidecar, the sidecar winning."""
    path = Path(path)
    meta: dict[str, Any] = {}
    if path.suffix in SAFETENSORS_SUFFIXES:
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
        except (SafetensorError, OSError) as exc:
            raise ModelFormatError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {exc}") from exc
        if METADATA_KEY in header:
            meta.update(_parse_json(header[METADATA_KEY], f"{path.name} metadata"))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        meta.update(_parse_json(sidecar.read_text(encoding="utf-8"), sidecar.name))
    return meta


def _parse_json(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelFormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def load_state_dict(path: str | os.PathLike, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a weight file on CPU. Pickle files load with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    if path.suffix in SAFETENSORS_SUFFIXES:
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ModelFormatError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {exc}") from exc
    if path.suffix in PICKLE_SUFFIXES:
        return _load_pickle(path, trust_pickle)
    raise ModelFormatError(
        f"{path.name}: unsupported weight file type {path.suffix!r}; expected .safetensors, or .pt/.pth/.bin/.ckpt"
    )


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write tensors (+ this project's metadata as JSON) atomically: temp file, then rename."""
    return save_safetensors_files([(tensors, path, metadata)])[0]


def save_safetensors_files(files: Sequence[tuple[Mapping[str, torch.Tensor], str | os.PathLike, Mapping[str, Any] | None]]) -> list[Path]:
    """Write several (tensors, path, metadata) files all or none: each goes to a temp file
    beside it, then all are renamed into place; if a rename fails, those already renamed are
    removed, and an interrupted write leaves no temp file."""
    paths = [Path(path) for _, path, _ in files]
    with ExitStack() as temps:
        staged = []
        for (tensors, _, metadata), path in zip(files, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {METADATA_KEY: json.dumps(dict(metadata), sort_keys=True)} if metadata else None
            contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            try:
                tmp = temps.enter_context(temp_beside(path))
                save_file(contiguous, str(tmp), metadata=header)
            except (SafetensorError, OSError) as exc:  # a full disk says nothing of where: name the file
                raise OSError(f"cannot write {path}: {exc}") from exc
            staged.append(tmp)
        renamed: list[Path] = []
        with all_or_nothing(renamed, lambda: f"write {paths[len(renamed)]}"):
            for tmp, path in zip(staged, paths):
                os.replace(tmp, path)
                renamed.append(path)
    return paths


def resolve_inside(folder: str | os.PathLike, name: str) -> Path:
    """``folder/name`` if it stays inside ``folder`` (after resolving symlinks); an error otherwise."""
    base = Path(folder).resolve()
    candidate = (base / name).resolve()
    if candidate != base and base not in candidate.parents:
        raise ModelFormatError(f"{name!r} points outside {base}; file names must stay inside their model folder")
    return candidate
