"""diffusers Stable Diffusion UNet / VAE state dicts -> the original (LDM) key layout,
from the keys alone (no config file, no network).

ComfyUI detects an SD1.5 UNet, and its InstructPix2Pix variant, only from the LDM
layout (``input_blocks.0.0.weight`` with 4 or 8 input channels), and loads a
stand-alone VAE file in the LDM layout too. The depth is read from the keys: res
blocks per level from ``down_blocks.0.resnets.*`` (up levels have one more),
which up levels carry attention from ``up_blocks.N.attentions.*`` (it moves the
upsampler from block part 1 to 2), the VAE's levels from ``encoder.down_blocks.*``.
A key this mapping does not know is an error, never passed through: ComfyUI only
warns about unexpected keys and would compute with the weights missing.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from .critics.state_dicts import preview
from .errors import ModelFormatError

# Keys every diffusers UNet2DConditionModel / AutoencoderKL has, whatever its depth.
UNET_MARKERS = ("conv_in.weight", "time_embedding.linear_1.weight", "conv_out.weight")
VAE_MARKERS = ("encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.weight")

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_TRANSFORMER_PARTS = ("norm", "proj_in", "proj_out", "transformer_blocks")
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
# Attention names of current diffusers, and of files saved before diffusers 0.14.
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
                  "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}
_VAE_FIXED = {"conv_in": "conv_in", "conv_out": "conv_out", "conv_norm_out": "norm_out"}

_BLOCK = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)")
_MID = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)")


def is_diffusers_unet(state: Mapping[str, torch.Tensor]) -> bool:
    return all(key in state for key in UNET_MARKERS)


def is_diffusers_vae(state: Mapping[str, torch.Tensor]) -> bool:
    return all(key in state for key in VAE_MARKERS)


class _Unknown(Exception):
    """A key outside the mapping; collected and reported together."""


def _renamed(inner: str, table: Mapping[str, str]) -> str:
    """``inner`` with its leading name (one or two dotted parts) looked up in ``table``."""
    for head, new in table.items():
        if inner.startswith(head + "."):
            return new + inner[len(head):]
    raise _Unknown(inner)


def _unet_part(kind: str, inner: str) -> str:
    """A res block's or transformer's inner key in LDM names."""
    if kind == "resnets":
        return _renamed(inner, _RESNET)
    if inner.split(".", 1)[0] not in _TRANSFORMER_PARTS:
        raise _Unknown(inner)
    return inner


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many ``prefix<N>.`` indices the keys use."""
    return len({key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)})


def _convert(state: Mapping[str, torch.Tensor], rename, what: str) -> dict[str, torch.Tensor]:
    converted, unknown = {}, []
    for key, tensor in state.items():
        try:
            new, tensor = rename(key, tensor)
        except (_Unknown, KeyError):
            unknown.append(key)
            continue
        converted[new] = tensor
    if unknown:
        raise ModelFormatError(f"{len(unknown)} key(s) outside the diffusers SD {what} layout: {preview(unknown)}")
    return converted


def unet_to_ldm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict (SD1.x/2.x family) in LDM ``UNetModel``
    key names, tensors unchanged."""
    if not is_diffusers_unet(state):
        raise ModelFormatError(f"not a diffusers UNet: missing {preview(k for k in UNET_MARKERS if k not in state)}")
    layers = _count(state, "down_blocks.0.resnets.")
    attention_up = {int(key.split(".")[1]) for key in state if key.startswith("up_blocks.") and ".attentions." in key}

    def rename(key: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
        for old, new in _UNET_FIXED.items():
            if key.startswith(old + "."):
                return new + key[len(old):], tensor
        if mid := _MID.fullmatch(key):
            kind, index, inner = mid.groups()
            block = {("resnets", "0"): 0, ("attentions", "0"): 1, ("resnets", "1"): 2}[(kind, index)]
            return f"middle_block.{block}.{_unet_part(kind, inner)}", tensor
        match = _BLOCK.fullmatch(key)
        if not match:
            raise _Unknown(key)
        stage, level, kind, index, inner = match.groups()
        level, index = int(level), int(index)
        if kind == "downsamplers":
            return f"input_blocks.{(level + 1) * (layers + 1)}.0.{_renamed(inner, {'conv': 'op'})}", tensor
        if kind == "upsamplers":
            part = 2 if level in attention_up else 1  # after the transformer, if the level has one
            return f"output_blocks.{level * (layers + 1) + layers}.{part}.{_renamed(inner, {'conv': 'conv'})}", tensor
        # inside an LDM block the res block is part 0, the transformer part 1; up levels have one res block more
        part = 0 if kind == "resnets" else 1
        block = 1 + level * (layers + 1) + index if stage == "down_blocks" else level * (layers + 1) + index
        stage = "input_blocks" if stage == "down_blocks" else "output_blocks"
        return f"{stage}.{block}.{part}.{_unet_part(kind, inner)}", tensor

    return _convert(state, rename, "UNet")


def vae_to_ldm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict in LDM ``AutoencoderKL`` key names; the
    mid-block attention's linear weights become the 1x1 convolutions LDM uses."""
    if not is_diffusers_vae(state):
        raise ModelFormatError(f"not a diffusers VAE: missing {preview(k for k in VAE_MARKERS if k not in state)}")
    levels = _count(state, "encoder.down_blocks.")

    def rename(key: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
        coder, _, rest = key.partition(".")
        if coder in ("quant_conv", "post_quant_conv"):
            return key, tensor
        if coder not in ("encoder", "decoder"):
            raise _Unknown(key)
        if mid := _MID.fullmatch(rest):
            kind, index, inner = mid.groups()
            if kind == "attentions" and index == "0":
                weight = tensor[:, :, None, None] if tensor.ndim == 2 else tensor
                return f"{coder}.mid.attn_1.{_renamed(inner, _VAE_ATTENTION)}", weight
            return f"{coder}.mid.block_{int(index) + 1}.{_renamed(inner, _VAE_RESNET)}", tensor
        match = _BLOCK.fullmatch(rest)
        if not match:
            return f"{coder}.{_renamed(rest, _VAE_FIXED)}", tensor
        stage, level, kind, index, inner = match.groups()
        if (coder, stage) not in (("encoder", "down_blocks"), ("decoder", "up_blocks")):
            raise _Unknown(key)
        ldm_stage, level = ("down", int(level)) if coder == "encoder" else ("up", levels - 1 - int(level))
        if kind in ("downsamplers", "upsamplers"):
            return f"{coder}.{ldm_stage}.{level}.{kind[:-2]}.{_renamed(inner, {'conv': 'conv'})}", tensor
        if kind != "resnets":
            raise _Unknown(key)
        return f"{coder}.{ldm_stage}.{level}.block.{index}.{_renamed(inner, _VAE_RESNET)}", tensor

    return _convert(state, rename, "VAE")
