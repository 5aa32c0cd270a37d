"""An InstructPix2Pix UNet and VAE (``instruct_pix2pix.InstructPix2Pix``) from weight files,
offline, in any of the layouts a user has:

- EmoEditor's released ``model_ip2p.pt`` (``unet.*`` / ``auto_encoder.*``, diffusers
  layout, fp16), given as the UNet, the VAE or both; read with ``weights_only=True``,
  full pickle only with ``trust_pickle``;
- what ``convert`` writes for ComfyUI: the UNet in the original (LDM) layout
  (``input_blocks.*``, with or without ``model.diffusion_model.``) and the VAE in the LDM
  layout VAELoader reads (``encoder.down.*``, with or without ``first_stage_model.``);
  an original-layout checkpoint holding both works too;
- diffusers-layout UNet / VAE state dicts (``conv_in.*``, ``down_blocks.*``).

Every layout goes through one path: diffusers keys are renamed to LDM ones
(``diffusers_to_ldm``), the diffusers configs are read from the LDM shapes as for
single-file SD1.5 checkpoints (``single_file``), and diffusers' own LDM converters
(``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint``) build the state dicts,
loaded strictly: a key left over or missing is an error, never garbage computed quietly.
fp16 weights are upcast to float32 on the CPU (which lacks fast fp16 kernels) and kept
in their dtype on other devices, as upstream runs them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ..diffusers_to_ldm import (
    is_diffusers_unet,
    is_diffusers_vae,
    unet_to_ldm,
    vae_to_ldm,
)
from ..emoeditor_release import IP2P, split_ip2p
from ..errors import ModelFormatError
from ..weights import load_state_dict
from .instruct_pix2pix import InstructPix2Pix, check_unet
from .single_file import UNET, VAE, unet_config, vae_config

log = logging.getLogger(__name__)

_LDM_UNET = "input_blocks.0.0.weight"
_LDM_VAE = "encoder.down.0.block.0.conv1.weight"


def _read(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    return load_state_dict(path, trust_pickle=trust_pickle)


def _release_half(state: Mapping[str, torch.Tensor], path: Path, half: int) -> dict[str, torch.Tensor] | None:
    """The UNet (0) or VAE (1) of a released model_ip2p.pt, or None when ``state`` is not one."""
    if not any(key.startswith(("unet.", "auto_encoder.")) for key in state):
        return None
    return split_ip2p(state, path.name)[half]


def _prefixed(state: Mapping[str, torch.Tensor], prefix: str, marker: str) -> dict[str, torch.Tensor] | None:
    """``state``'s LDM part under ``prefix`` (the full-checkpoint prefix), or None when it has none."""
    if prefix + marker in state:
        return {key: value for key, value in state.items() if key.startswith(prefix)}
    if marker in state:
        return {prefix + key: value for key, value in state.items()}
    return None


def _ldm(state: Mapping[str, torch.Tensor], path: Path, what: str) -> dict[str, torch.Tensor]:
    """``state`` in the LDM layout under the full-checkpoint prefix of ``what`` ("UNet" or "VAE")."""
    is_diffusers, to_ldm, prefix, marker = ((is_diffusers_unet, unet_to_ldm, UNET, _LDM_UNET) if what == "UNet"
                                            else (is_diffusers_vae, vae_to_ldm, VAE, _LDM_VAE))
    state = _release_half(state, path, 0 if what == "UNet" else 1) or state
    ldm = _prefixed(state, prefix, marker)
    if ldm is None and is_diffusers(state):  # its marker keys are in LDM VAEs too: LDM is told first
        try:
            ldm = _prefixed(to_ldm(state), prefix, marker)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{path.name}: {exc}") from exc
    if ldm is None:
        raise ModelFormatError(
            f"{path.name}: not an InstructPix2Pix {what} layout this project reads; found {len(state)} tensors "
            f"({', '.join(list(state)[:4])}, ...); expected EmoEditor's {IP2P}.pt, or a {what} in the original "
            f"(LDM) layout ({marker}) or the diffusers layout")
    return ldm


def _build(model_class, config: dict, state: Mapping[str, torch.Tensor], path: Path, what: str) -> torch.nn.Module:
    model = model_class(**{k: v for k, v in config.items() if not k.startswith("_")})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFormatError(f"{path.name}: the {what} weights do not fit the {what} their shapes describe "
                               f"({str(exc).splitlines()[0]})") from exc
    return model


def load_unet(path: Path, state: Mapping[str, torch.Tensor]):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    ldm = _ldm(state, path, "UNet")
    shapes = {key: tuple(value.shape) for key, value in ldm.items()}
    config = unet_config(shapes, path, lambda channels, path: check_unet(channels, f"{path.name}'s UNet"))
    unet = _build(UNet2DConditionModel, config, convert_ldm_unet_checkpoint(ldm, config), path, "UNet")
    return unet, next(iter(ldm.values())).dtype


def load_vae(path: Path, state: Mapping[str, torch.Tensor]):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ldm = _ldm(state, path, "VAE")
    config = vae_config({key: tuple(value.shape) for key, value in ldm.items()}, path)
    return _build(AutoencoderKL, config, convert_ldm_vae_checkpoint(ldm, config), path, "VAE")


def load_instruct_pix2pix(unet_path: str | os.PathLike, vae_path: str | os.PathLike, *, trust_pickle: bool = False,
                          device: str | torch.device = "cpu") -> InstructPix2Pix:
    """The UNet of ``unet_path`` and the VAE of ``vae_path`` (the same file is read once), on ``device``:
    float32 on the CPU, the UNet file's dtype elsewhere."""
    unet_path, vae_path = Path(unet_path), Path(vae_path)
    unet_state = _read(unet_path, trust_pickle)
    vae_state = unet_state if vae_path.resolve() == unet_path.resolve() else _read(vae_path, trust_pickle)
    unet, file_dtype = load_unet(unet_path, unet_state)
    vae = load_vae(vae_path, vae_state)
    dtype = torch.float32 if torch.device(device).type == "cpu" else file_dtype
    for module in (unet, vae):  # built in float32
        module.to(device).eval().requires_grad_(False)
        if dtype != torch.float32:
            module.to(dtype)
    log.info("loaded InstructPix2Pix UNet %s and VAE %s (%s on %s)", unet_path.name, vae_path.name, dtype, device)
    return InstructPix2Pix(unet, vae)
