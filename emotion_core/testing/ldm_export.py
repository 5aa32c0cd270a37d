"""Write a diffusers SD pipeline folder as one original-layout (LDM) checkpoint.

Only for tests: the tiny test pipeline becomes the kind of single file ComfyUI
loads (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.text_model.*``), so the offline single-file
loader can be checked against the folder it came from, weight for weight.
Handles the UNet/VAE shapes diffusers builds for SD1.5-style configs (any
number of levels and res blocks, one transformer per attention block).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..weights import save_safetensors

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _replace_head(key: str, table: dict[str, str]) -> str:
    head, _, rest = key.partition(".")
    if key.startswith("to_out.0."):
        head, rest = "to_out.0", key[len("to_out.0."):]
    return f"{table.get(head, head)}.{rest}"


def _block_part(kind: str, inner: str) -> str:
    """Inside an LDM block: the res block is part 0 (renamed), the transformer part 1."""
    return f"0.{_replace_head(inner, _RESNET)}" if kind == "resnets" else f"1.{inner}"


def _unet_key(key: str, layers: int, attention_up: list[bool]) -> str:
    """diffusers UNet2DConditionModel key -> LDM ``UNetModel`` key."""
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for old, new in fixed.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    parts = key.split(".")
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        inner = ".".join(parts[3:])
        return f"middle_block.{index}.{_replace_head(inner, _RESNET) if parts[1] == 'resnets' else inner}"
    stage, level, kind = parts[0], int(parts[1]), parts[2]
    inner = ".".join(parts[4:])
    if stage == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(level + 1) * (layers + 1)}.0.op.{parts[-1]}"
        return f"input_blocks.{1 + level * (layers + 1) + int(parts[3])}.{_block_part(kind, inner)}"
    if kind == "upsamplers":
        position = 2 if attention_up[level] else 1
        return f"output_blocks.{level * (layers + 1) + layers}.{position}.conv.{parts[-1]}"
    # up levels have one res block more than down levels
    return f"output_blocks.{level * (layers + 1) + int(parts[3])}.{_block_part(kind, inner)}"


def _vae_key(key: str, levels: int) -> str:
    """diffusers AutoencoderKL key -> LDM ``AutoencoderKL`` key."""
    coder, _, rest = key.partition(".")
    if coder not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    parts = rest.split(".")
    if parts[0] in ("conv_norm_out",):
        return f"{coder}.norm_out.{parts[-1]}"
    if parts[0] == "mid_block":
        inner = ".".join(parts[3:])
        if parts[1] == "attentions":
            return f"{coder}.mid.attn_1.{_replace_head(inner, _VAE_ATTENTION)}"
        return f"{coder}.mid.block_{int(parts[2]) + 1}.{inner.replace('conv_shortcut', 'nin_shortcut')}"
    if parts[0] in ("down_blocks", "up_blocks"):
        level = int(parts[1]) if parts[0] == "down_blocks" else levels - 1 - int(parts[1])
        stage = "down" if parts[0] == "down_blocks" else "up"
        if parts[2] in ("downsamplers", "upsamplers"):
            return f"{coder}.{stage}.{level}.{parts[2][:-2]}.conv.{parts[-1]}"
        inner = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
        return f"{coder}.{stage}.{level}.block.{parts[3]}.{inner}"
    return key


def write_original_checkpoint(pipeline_dir: str | Path, path: str | Path) -> Path:
    """The pipeline folder's UNet, VAE and text encoder as one LDM-layout .safetensors file."""
    pipeline_dir = Path(pipeline_dir)
    unet_config = json.loads((pipeline_dir / "unet" / "config.json").read_text())
    vae_config = json.loads((pipeline_dir / "vae" / "config.json").read_text())
    layers = unet_config["layers_per_block"]
    attention_up = [t.startswith("CrossAttn") for t in unet_config["up_block_types"]]
    levels = len(vae_config["block_out_channels"])
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in load_file(pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors").items():
        tensors["model.diffusion_model." + _unet_key(key, layers, attention_up)] = tensor
    for key, tensor in load_file(pipeline_dir / "vae" / "diffusion_pytorch_model.safetensors").items():
        new = _vae_key(key, levels)
        if ".mid.attn_1." in new and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # LDM's VAE attention uses 1x1 convolutions
        tensors["first_stage_model." + new] = tensor
    for key, tensor in load_file(pipeline_dir / "text_encoder" / "model.safetensors").items():
        key = key if key.startswith("text_model.") else "text_model." + key
        tensors["cond_stage_model.transformer." + key] = tensor
    return save_safetensors(tensors, path, {"role": "checkpoint", "layout": "sd15-ldm", "source": pipeline_dir.name})
