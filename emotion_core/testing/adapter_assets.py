"""Random-weight visual prompt adapters in the public IP-Adapter layout.

``adapter_shapes`` gives the exact tensor shapes of the public files (SD1.5 and
SDXL ViT-H, base and plus) or of an adapter for any UNet depth; tests build
real-shaped state dicts from it on the ``meta`` device (no memory) to check
detection. The files written for the test models fit the tiny SD1.5 checkpoint
(its 7 cross-attention blocks) with the real ViT-H projection shapes, so they
run with the test CLIP vision file in a real ComfyUI.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..visual_prompt.layout import BASE, PLUS
from ..weights import save_safetensors

# attn2 inner widths in adapter order (diffusers: down blocks, up blocks, middle).
SD15_LAYER_DIMS = (320, 320, 640, 640, 1280, 1280) + (1280,) * 3 + (640,) * 3 + (320,) * 3 + (1280,)
SDXL_LAYER_DIMS = (640,) * 4 + (1280,) * 20 + (1280,) * 30 + (640,) * 6 + (1280,) * 10
# family -> (cross_dim, layer dims, plus resampler width, plus heads); all public files here read ViT-H/14.
REAL_LAYOUTS = {"sd15": (768, SD15_LAYER_DIMS, 768, 12), "sdxl": (2048, SDXL_LAYER_DIMS, 1280, 20)}
VIT_H_EMBEDS, VIT_H_HIDDEN = 1024, 1280
_STAGE_ORDER = {"input": 0, "output": 1, "middle": 2}


def adapter_shapes(variant: str, cross_dim: int, layer_dims: Sequence[int], resampler_dim: int = 768,
                   resampler_heads: int = 12, depth: int = 4, tokens: int | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an IP-Adapter state dict (ViT-H features)."""
    shapes: dict[str, tuple[int, ...]] = {}
    if variant == BASE:
        tokens = tokens or 4
        shapes["image_proj.proj.weight"] = (tokens * cross_dim, VIT_H_EMBEDS)
        shapes["image_proj.proj.bias"] = (tokens * cross_dim,)
        shapes["image_proj.norm.weight"] = shapes["image_proj.norm.bias"] = (cross_dim,)
    elif variant == PLUS:
        dim, inner = resampler_dim, resampler_heads * 64
        shapes["image_proj.latents"] = (1, tokens or 16, dim)
        shapes["image_proj.proj_in.weight"], shapes["image_proj.proj_in.bias"] = (dim, VIT_H_HIDDEN), (dim,)
        for i in range(depth):
            p = f"image_proj.layers.{i}."
            for norm in ("0.norm1", "0.norm2", "1.0"):
                shapes[f"{p}{norm}.weight"] = shapes[f"{p}{norm}.bias"] = (dim,)
            shapes[f"{p}0.to_q.weight"] = (inner, dim)
            shapes[f"{p}0.to_kv.weight"] = (2 * inner, dim)
            shapes[f"{p}0.to_out.weight"] = (dim, inner)
            shapes[f"{p}1.1.weight"] = (4 * dim, dim)
            shapes[f"{p}1.3.weight"] = (dim, 4 * dim)
        shapes["image_proj.proj_out.weight"], shapes["image_proj.proj_out.bias"] = (cross_dim, dim), (cross_dim,)
        shapes["image_proj.norm_out.weight"] = shapes["image_proj.norm_out.bias"] = (cross_dim,)
    else:
        raise ValueError(f"variant must be {BASE!r} or {PLUS!r}")
    for i, inner_dim in enumerate(layer_dims):
        shapes[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = shapes[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = \
            (inner_dim, cross_dim)
    return shapes


def real_adapter_shapes(family: str, variant: str) -> dict[str, tuple[int, ...]]:
    """Shapes of ip-adapter(-plus)_sd15 / ip-adapter(-plus)_sdxl_vit-h."""
    cross_dim, dims, resampler_dim, heads = REAL_LAYOUTS[family]
    return adapter_shapes(variant, cross_dim, dims, resampler_dim, heads)


def random_state_dict(shapes: Mapping[str, tuple[int, ...]], seed: int = 0, dtype=torch.float16,
                      device: str = "cpu") -> dict[str, torch.Tensor]:
    """Norms 1/0, biases 0, latents N(0, 1/dim), weights N(0, 1/fan_in); shapes only on ``meta``."""
    if device == "meta":
        return {k: torch.empty(shape, dtype=dtype, device="meta") for k, shape in shapes.items()}
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        is_norm = ".norm" in key or key.startswith("image_proj.layers.") and ".1.0." in key
        if key.endswith(".bias"):
            tensor = torch.zeros(shape)
        elif is_norm:
            tensor = torch.ones(shape)
        else:
            tensor = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
        out[key] = tensor.to(dtype)
    return out


def _tiny_checkpoint_layer_dims() -> tuple[int, ...]:
    from .checkpoint import UNET_ATTN2_BLOCKS

    ordered = sorted(UNET_ATTN2_BLOCKS, key=lambda site: (_STAGE_ORDER[site[0]], site[1]))
    return tuple(channels for _, _, channels in ordered)


def write_test_adapters(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """Base and plus SD1.5 adapters for the tiny test checkpoint, at ``names["adapter_sd15"]`` and
    ``names["adapter_sd15_plus"]``; returns role -> path. Deterministic for a seed."""
    models_dir = Path(models_dir)
    cross_dim, _, resampler_dim, heads = REAL_LAYOUTS["sd15"]
    dims = _tiny_checkpoint_layer_dims()
    written = {}
    for role, variant in (("adapter_sd15", BASE), ("adapter_sd15_plus", PLUS)):
        shapes = adapter_shapes(variant, cross_dim, dims, resampler_dim, heads)
        tensors = random_state_dict(shapes, seed=zlib.crc32(f"{role}:{seed}".encode()))
        metadata = {"role": role, "layout": f"ip-adapter sd15 {variant}", "seed": seed, "random_weights": True}
        written[role] = save_safetensors(tensors, models_dir / names[role], metadata)
    return written


# Flux.1 IP-Adapters: XLabs (CLIP ViT-L/14 image_embeds, 4 tokens, 19 double blocks) and
# InstantX (SigLIP so400m pooled, 128 tokens, 19 double + 38 single blocks); T5 width 4096, DiT width 3072.
FLUX_T5_DIM, FLUX_HIDDEN = 4096, 3072
REAL_FLUX_LAYOUTS = {"xlabs": dict(layers=19, feature_dim=768, tokens=4),
                     "instantx": dict(layers=57, feature_dim=1152, tokens=128)}


def flux_adapter_shapes(variant: str, layers: int, hidden: int = FLUX_HIDDEN, cross_dim: int = FLUX_T5_DIM,
                        feature_dim: int | None = None, tokens: int | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a Flux IP-Adapter state dict in the XLabs or InstantX layout (InstantX's
    .bin nests ``image_proj`` / ``ip_adapter``; flattened here, as the loader flattens it)."""
    real = REAL_FLUX_LAYOUTS[variant]
    feature_dim, tokens = feature_dim or real["feature_dim"], tokens or real["tokens"]
    shapes: dict[str, tuple[int, ...]] = {}
    if variant == "xlabs":
        shapes["ip_adapter_proj_model.proj.weight"] = (tokens * cross_dim, feature_dim)
        shapes["ip_adapter_proj_model.proj.bias"] = (tokens * cross_dim,)
        shapes["ip_adapter_proj_model.norm.weight"] = shapes["ip_adapter_proj_model.norm.bias"] = (cross_dim,)
        for i in range(layers):
            for kv in "kv":
                p = f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj"
                shapes[f"{p}.weight"], shapes[f"{p}.bias"] = (hidden, cross_dim), (hidden,)
    else:
        shapes["image_proj.proj.0.weight"], shapes["image_proj.proj.0.bias"] = (2 * feature_dim, feature_dim), \
            (2 * feature_dim,)
        shapes["image_proj.proj.2.weight"] = (tokens * cross_dim, 2 * feature_dim)
        shapes["image_proj.proj.2.bias"] = (tokens * cross_dim,)
        shapes["image_proj.norm.weight"] = shapes["image_proj.norm.bias"] = (cross_dim,)
        for i in range(layers):
            shapes[f"ip_adapter.{i}.to_k_ip.weight"] = shapes[f"ip_adapter.{i}.to_v_ip.weight"] = (hidden, cross_dim)
    return shapes


def real_flux_adapter_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Shapes of XLabs' ``ip_adapter.safetensors`` / InstantX's ``ip-adapter.bin`` for Flux.1-dev."""
    return flux_adapter_shapes(variant, REAL_FLUX_LAYOUTS[variant]["layers"])


def write_flux_ip_adapter(path: str | Path, variant: str, layers: int, hidden: int, seed: int = 0,
                          tokens: int | None = None) -> Path:
    """A random-weight Flux IP-Adapter file in the published layout: XLabs as safetensors, InstantX as
    a torch-saved ``{"image_proj": ..., "ip_adapter": ...}`` .bin (read weights-only)."""
    shapes = flux_adapter_shapes(variant, layers, hidden, tokens=tokens)
    tensors = random_state_dict(shapes, seed=zlib.crc32(f"flux-{variant}:{seed}".encode()), dtype=torch.float16)
    path = Path(path)
    if variant == "xlabs":
        return save_safetensors(tensors, path, {"layout": "flux ip-adapter xlabs", "seed": seed,
                                                "random_weights": True})
    nested = {"image_proj": {k[len("image_proj."):]: v for k, v in tensors.items() if k.startswith("image_proj.")},
              "ip_adapter": {k[len("ip_adapter."):]: v for k, v in tensors.items() if k.startswith("ip_adapter.")}}
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..atomic import temp_beside

    with temp_beside(path) as temp:
        torch.save(nested, temp)
        os.replace(temp, path)
    return path


def write_flux_test_adapters(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """XLabs and InstantX Flux IP-Adapters for the tiny Flux test model (its block counts, Flux.1's
    3072 width and 4096 tokens; InstantX with 4 tokens instead of 128 to keep the file small)."""
    from .sdxl_flux_checkpoints import FLUX_DOUBLE_BLOCKS, FLUX_HIDDEN, FLUX_SINGLE_BLOCKS

    models_dir = Path(models_dir)
    return {
        "adapter_flux_xlabs": write_flux_ip_adapter(models_dir / names["adapter_flux_xlabs"], "xlabs",
                                                    FLUX_DOUBLE_BLOCKS, FLUX_HIDDEN, seed),
        "adapter_flux_instantx": write_flux_ip_adapter(models_dir / names["adapter_flux_instantx"], "instantx",
                                                       FLUX_DOUBLE_BLOCKS + FLUX_SINGLE_BLOCKS, FLUX_HIDDEN, seed,
                                                       tokens=4),
    }
