"""Write a diffusers SD pipeline folder as one original-layout (LDM) checkpoint.

Only for tests: the tiny test pipeline becomes the kind of single file ComfyUI
loads (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.text_model.*``), so the offline single-file
loader can be checked against the folder it came from, weight for weight.
The UNet and VAE keys are renamed by ``emotion_core.diffusers_to_ldm``, the
mapping ``convert`` uses.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ..diffusers_to_ldm import unet_to_ldm, vae_to_ldm
from ..weights import save_safetensors


def write_original_checkpoint(pipeline_dir: str | Path, path: str | Path) -> Path:
    """The pipeline folder's UNet, VAE and text encoder as one LDM-layout .safetensors file."""
    pipeline_dir = Path(pipeline_dir)
    tensors: dict[str, torch.Tensor] = {}
    unet = unet_to_ldm(load_file(pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    tensors.update({"model.diffusion_model." + key: tensor for key, tensor in unet.items()})
    vae = vae_to_ldm(load_file(pipeline_dir / "vae" / "diffusion_pytorch_model.safetensors"))
    tensors.update({"first_stage_model." + key: tensor for key, tensor in vae.items()})
    for key, tensor in load_file(pipeline_dir / "text_encoder" / "model.safetensors").items():
        key = key if key.startswith("text_model.") else "text_model." + key
        tensors["cond_stage_model.transformer." + key] = tensor
    return save_safetensors(tensors, path, {"role": "checkpoint", "layout": "sd15-ldm", "source": pipeline_dir.name})
