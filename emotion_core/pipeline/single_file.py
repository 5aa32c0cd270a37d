"""Original-layout SD1.5 ``.safetensors`` checkpoints through diffusers' own
``from_single_file``, fully offline.

``from_single_file`` needs diffusers-format component configs; without a local
copy it fetches them from the hub. Every SD1.5 fine-tune shares the settings a
weight file does not carry (heads, norm groups, scheduler: ``sd15_configs``),
and the rest — UNet depth and widths, VAE widths, text encoder size — is read
here from the tensor shapes, the way ComfyUI's model detection does. The
configs, with a CLIP tokenizer built from open_clip's BPE table, go into a
temporary folder passed as ``config=``. SD2.x, SDXL, inpainting and
InstructPix2Pix checkpoints are refused with a message: their text encoders or
conditioning differ and are not covered offline.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Callable

import torch

from ..errors import ModelFormatError
from . import sd15_configs as sd15
from .tokenizer_files import write_clip_tokenizer

log = logging.getLogger(__name__)

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT_PREFIXES = ("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")
_TRANSFORMER = re.compile(r"\.transformer_blocks\.(\d+)\.")


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelFormatError(f"{path.name}: not a readable .safetensors file ({exc})") from exc


def _need(shapes: dict, key: str, path: Path) -> tuple[int, ...]:
    if key not in shapes:
        raise ModelFormatError(f"{path.name}: not an original-layout SD1.5 checkpoint (no {key})")
    return shapes[key]


def text_to_image_only(in_channels: int, path: Path) -> None:
    if in_channels != 4:
        raise ModelFormatError(f"{path.name}: the UNet reads {in_channels} latent channels (inpainting or "
                               "InstructPix2Pix); generate needs a text-to-image SD1.5 model with 4")


def unet_config(shapes: dict, path: Path,
                check_channels: Callable[[int, Path], None] = text_to_image_only) -> dict:
    """UNet2DConditionModel config from LDM ``input_blocks`` (levels end at an ``op`` downsample);
    ``check_channels(in_channels, path)`` refuses the input channel counts the caller cannot run."""
    conv_in = _need(shapes, f"{UNET}input_blocks.0.0.weight", path)
    in_channels = conv_in[1]
    if f"{UNET}label_emb.0.0.weight" in shapes:
        raise ModelFormatError(f"{path.name}: an SDXL checkpoint; load SDXL models as a diffusers folder "
                               "(generate runs SD1.5-family models)")
    check_channels(in_channels, path)
    levels: list[list[tuple[int, int]]] = [[]]  # per level: (channels, transformer depth) of each res block
    block = 1
    while True:
        p = f"{UNET}input_blocks.{block}."
        if f"{p}0.op.weight" in shapes:
            levels.append([])
        elif f"{p}0.in_layers.2.weight" in shapes:
            depth = len({int(m.group(1)) for k in shapes if k.startswith(f"{p}1.") and (m := _TRANSFORMER.search(k))})
            levels[-1].append((shapes[f"{p}0.in_layers.2.weight"][0], depth))
        else:
            break
        block += 1
    res_blocks = {len(level) for level in levels}
    if len(res_blocks) != 1 or not levels[0]:
        raise ModelFormatError(f"{path.name}: UNet levels with {sorted(res_blocks)} res blocks; expected the same "
                               "number on every level")
    depths = {d for level in levels for _, d in level if d}
    if depths != {1}:
        raise ModelFormatError(f"{path.name}: transformer depth {sorted(depths)}; SD1.5 models have 1 per block")
    attn2 = next((k for k in shapes if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    if attn2 is None:
        raise ModelFormatError(f"{path.name}: the UNet has no cross-attention")
    context = shapes[attn2][1]
    proj_in = next(shapes[k] for k in shapes if k.startswith(UNET) and k.endswith(".proj_in.weight"))
    if context != 768 or len(proj_in) != 4:
        family = "SD2.x" if context == 1024 else f"a {context}-wide text context"
        raise ModelFormatError(f"{path.name}: {family} checkpoint; single-file loading covers SD1.5-family models "
                               "(768-wide CLIP ViT-L text context) — load other models as a diffusers folder")
    attention = [bool(level[0][1]) for level in levels]
    return {
        "_class_name": "UNet2DConditionModel", "sample_size": 64, "in_channels": in_channels,
        "out_channels": _need(shapes, f"{UNET}out.2.weight", path)[0],
        "block_out_channels": [level[0][0] for level in levels], "layers_per_block": res_blocks.pop(),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "mid_block_type": "UNetMidBlock2DCrossAttn" if f"{UNET}middle_block.1.proj_in.weight" in shapes else None,
        "cross_attention_dim": context, "attention_head_dim": sd15.UNET_HEADS, "use_linear_projection": False,
        "norm_num_groups": sd15.NORM_GROUPS, "act_fn": "silu", "flip_sin_to_cos": True, "freq_shift": 0,
    }


def vae_config(shapes: dict, path: Path) -> dict:
    conv_in = _need(shapes, f"{VAE}encoder.conv_in.weight", path)
    widths, level = [], 0
    while f"{VAE}encoder.down.{level}.block.0.conv2.weight" in shapes:
        widths.append(shapes[f"{VAE}encoder.down.{level}.block.0.conv2.weight"][0])
        level += 1
    layers = len({k.split(".")[5] for k in shapes if k.startswith(f"{VAE}encoder.down.0.block.")})
    return {
        "_class_name": "AutoencoderKL", "in_channels": conv_in[1],
        "out_channels": _need(shapes, f"{VAE}decoder.conv_out.weight", path)[0],
        "latent_channels": _need(shapes, f"{VAE}encoder.conv_out.weight", path)[0] // 2,
        "block_out_channels": widths, "layers_per_block": layers,
        "down_block_types": ["DownEncoderBlock2D"] * len(widths), "up_block_types": ["UpDecoderBlock2D"] * len(widths),
        "norm_num_groups": sd15.NORM_GROUPS, "act_fn": "silu", "sample_size": 512,
        "scaling_factor": sd15.VAE_SCALING_FACTOR,
    }


def text_config(shapes: dict, path: Path) -> dict:
    prefix = next((p for p in TEXT_PREFIXES if f"{p}embeddings.token_embedding.weight" in shapes), None)
    if prefix is None:
        if any(k.startswith("cond_stage_model.model.") for k in shapes):
            raise ModelFormatError(f"{path.name}: an OpenCLIP (SD2.x) text encoder; single-file loading covers SD1.5")
        raise ModelFormatError(f"{path.name}: no CLIP text encoder under cond_stage_model.transformer")
    vocab, hidden = shapes[f"{prefix}embeddings.token_embedding.weight"]
    layers = len({k[len(prefix):].split(".")[2] for k in shapes if k.startswith(f"{prefix}encoder.layers.")})
    return {
        "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": vocab,
        "hidden_size": hidden, "intermediate_size": _need(shapes, f"{prefix}encoder.layers.0.mlp.fc1.weight", path)[0],
        "num_hidden_layers": layers, "num_attention_heads": hidden // sd15.TEXT_HEAD_DIM,
        "max_position_embeddings": _need(shapes, f"{prefix}embeddings.position_embedding.weight", path)[0],
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": hidden,
        "bos_token_id": vocab - 2, "eos_token_id": vocab - 1, "pad_token_id": 1,
    }


def write_configs(path: Path, folder: Path) -> None:
    """The diffusers-format config folder (no weights) for the checkpoint at ``path``."""
    from diffusers import __version__ as diffusers_version

    shapes = _shapes(path)
    configs = {"unet/config.json": unet_config(shapes, path), "vae/config.json": vae_config(shapes, path),
               "text_encoder/config.json": text_config(shapes, path),
               "scheduler/scheduler_config.json": sd15.SCHEDULER_CONFIG,
               "model_index.json": sd15.model_index(diffusers_version)}
    for name, config in configs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(config, indent=1), encoding="utf-8")
    write_clip_tokenizer(folder / "tokenizer", configs["text_encoder/config.json"]["vocab_size"])
    log.debug("single-file configs for %s: %s", path.name, configs["unet/config.json"])


def load_single_file(path: Path, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline

    with tempfile.TemporaryDirectory(prefix="emotion-director-sd15-") as folder:
        write_configs(path, Path(folder))
        try:
            return StableDiffusionPipeline.from_single_file(
                str(path), config=folder, local_files_only=True, dtype=dtype, safety_checker=None,
                feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelFormatError(f"{path.name}: diffusers could not load this checkpoint offline ({exc})") from exc
