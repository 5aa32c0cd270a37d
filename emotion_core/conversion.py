"""What ``emotion-director convert`` writes for each input, recognised from its keys alone.

- EmoEditor's ``model_ip2p.pt``, a diffusers SD UNet (a file with diffusers keys, a UNet
  folder, or a pipeline folder with ``unet/``): the UNet in the original (LDM) layout,
  which ComfyUI's UNETLoader detects (8 input channels: SD1.5 InstructPix2Pix); with a
  VAE path, ``model_ip2p.pt``'s ``auto_encoder`` (or the pipeline's ``vae/``) in the
  LDM layout ComfyUI's VAELoader reads.
- EmoEditor's ``model_emoenc.pt``: the emotion encoder, in EmoEditor's class order.
- A critic (``emo_predictor.pt``, open_clip CLIP, probe heads): the tensors unchanged.
- With an explicit ``kind``: the tensors unchanged, recorded as that kind.

Tensors keep their dtype (the EmoEditor release is fp16) unless ``dtype`` is given.
All outputs are written together or not at all.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from . import emoeditor_release as release
from .critics import detect_kind
from .critics.loader import EXPECTED_LAYOUTS
from .critics.state_dicts import preview
from .diffusers_to_ldm import UNET_MARKERS, is_diffusers_unet, unet_to_ldm, vae_to_ldm
from .errors import InvalidInputError, ModelFormatError
from .taxonomy import EMOEDITOR_ORDER
from .weights import load_state_dict, save_safetensors_files

log = logging.getLogger(__name__)

ENCODER_KIND = "emoeditor_encoder"
UNET_KIND = "unet"
VAE_KIND = "vae"
# diffusers weight file names in a UNet / VAE folder, in order of preference.
_FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                   "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _folder_weights(folder: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    for name in _FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return load_state_dict(folder / name, trust_pickle=trust_pickle)
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise ModelFormatError(f"{folder}: no diffusers weights ({' or '.join(_FOLDER_WEIGHTS[:3])}); found {found or 'nothing'}")


def read_source(source: Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """The tensors of a weight file or diffusers folder, and a pipeline folder's VAE (else None)."""
    if not source.is_dir():
        return load_state_dict(source, trust_pickle=trust_pickle), None
    if (source / "unet").is_dir():
        vae = _folder_weights(source / "vae", trust_pickle) if (source / "vae").is_dir() else None
        return _folder_weights(source / "unet", trust_pickle), vae
    return _folder_weights(source, trust_pickle), None


def _dtype(name: str | None) -> torch.dtype | None:
    if name is not None and name not in DTYPES:
        raise InvalidInputError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES.get(name)


def _cast(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    if dtype is None:
        return dict(tensors)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def _unknown_layout(state: Mapping[str, torch.Tensor], source: Path, critic_error: ModelFormatError) -> InvalidInputError:
    if "CLIP image tower" in str(critic_error):
        return InvalidInputError(f"{critic_error}; pass --kind to convert it anyway")
    near = "".join(f"; {miss}" for miss in release.near_misses(state))
    return InvalidInputError(
        f"{source.name}: not a layout convert recognises; found {len(state)} tensors ({preview(state)}){near}; "
        f"expected EmoEditor's released files ({release.EXPECTED}), a diffusers SD UNet ({', '.join(UNET_MARKERS)}, "
        f"down_blocks.*; a file, a UNet folder or a pipeline folder), or a critic ({EXPECTED_LAYOUTS}); "
        "pass --kind to convert it anyway"
    )


def _plan(state: dict[str, torch.Tensor], pipeline_vae: dict[str, torch.Tensor] | None, source: Path,
          metadata: dict[str, Any]) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """(kind, tensors for OUT, diffusers VAE tensors or None) for a state dict without a given kind."""
    try:
        found = release.identify_release_file(state, source.name)
    except ModelFormatError:
        found = None
    if found == release.IP2P:
        unet, vae = release.split_ip2p(state, source.name)
        return UNET_KIND, unet_to_ldm(unet), vae
    if is_diffusers_unet(state):
        return UNET_KIND, unet_to_ldm(state), pipeline_vae
    if found == release.ENCODER:
        metadata.setdefault("class_order", list(EMOEDITOR_ORDER))
        return ENCODER_KIND, state, None
    try:
        return detect_kind(state, source), state, None
    except ModelFormatError as exc:
        raise _unknown_layout(state, source, exc) from exc


def convert_weights(source: Path, target: Path, metadata: dict[str, Any], *, vae_out: Path | None = None,
                    kind: str | None = None, trust_pickle: bool = False, dtype: str | None = None) -> dict:
    """Read ``source``, write ``target`` (and ``vae_out``) as safetensors with ``metadata``
    (+ the kind found), floating tensors cast to ``dtype`` (a ``DTYPES`` name) if given;
    returns what was written, for the CLI's output."""
    cast_to = _dtype(dtype)
    state, pipeline_vae = read_source(source, trust_pickle)
    if kind is not None:
        tensors, vae = state, None
    else:
        kind, tensors, vae = _plan(state, pipeline_vae, source, metadata)
    if vae_out is None and vae is not None:
        log.info("%s also holds a VAE; pass --vae-out FILE to write it for ComfyUI's VAELoader", source.name)
    if vae_out is not None and vae is None:
        raise InvalidInputError(f"--vae-out: {source.name} holds no VAE (only EmoEditor's model_ip2p.pt and "
                                "diffusers pipeline folders with vae/ do)")
    files = [(_cast(tensors, cast_to), target, {**metadata, "kind": kind})]
    if kind == UNET_KIND:
        files[0][2].update(layout="ldm", in_channels=int(tensors["input_blocks.0.0.weight"].shape[1]))
    if vae_out is not None:
        files.append((_cast(vae_to_ldm(vae), cast_to), vae_out,
                      {"kind": VAE_KIND, "layout": "ldm", "converted_from": metadata.get("converted_from", source.name)}))
    save_safetensors_files(files)
    for tensors_written, path, meta in files:
        log.info("wrote %d tensors (%s) to %s", len(tensors_written), meta["kind"], path)
    result = {"input": str(source), "output": str(target), "kind": kind, "tensors": len(tensors)}
    if vae_out is not None:
        result.update(vae_output=str(vae_out), vae_tensors=len(files[1][0]))
    return result
