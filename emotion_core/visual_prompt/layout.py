"""Read an IP-Adapter-layout state dict's architecture from its tensor shapes.

The public files (ip-adapter_sd15, ip-adapter-plus_sd15, ip-adapter_sdxl_vit-h,
ip-adapter-plus_sdxl_vit-h, ...) carry no config, so everything the loader
needs — model family, base or plus projection, widths, token count, the
per-layer attention widths — is derived here from key names and shapes. Only
shapes are read, so detection also works on ``meta`` tensors.

Key layout:
- ``image_proj.proj.weight [tokens*cross, clip_dim]`` + ``image_proj.norm.*``: base
  (4 tokens from the CLIP vision ``image_embeds``);
- ``image_proj.latents [1, tokens, dim]``, ``proj_in``, ``layers.{i}.0.*`` (perceiver
  attention), ``layers.{i}.1.*`` (feed-forward), ``proj_out``, ``norm_out``: plus
  (16 tokens from the penultimate CLIP vision hidden states);
- ``ip_adapter.{n}.to_k_ip.weight`` / ``to_v_ip.weight [inner, cross]``, numbered over
  the UNet's attention processors in diffusers order, odd ``n`` = cross-attention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import ModelFormatError

# Cross-attention (text context) width -> model family.
FAMILIES = {768: "sd15", 2048: "sdxl"}
# Number of cross-attention layers of each family's full-size UNet.
STANDARD_LAYERS = {"sd15": 16, "sdxl": 70}
BASE, PLUS = "base", "plus"
# The perceiver attention of the public plus files always uses 64-wide heads.
RESAMPLER_HEAD_DIM = 64

_IP_KEY = re.compile(r"^ip_adapter\.(\d+)\.(to_k_ip|to_v_ip)\.weight$")
_LAYER_KEY = re.compile(r"^image_proj\.layers\.(\d+)\.")


@dataclass(frozen=True)
class ResamplerShape:
    dim: int  # width of the latent queries
    depth: int  # perceiver layers
    heads: int
    head_dim: int
    ff_mult: int


@dataclass(frozen=True)
class AdapterLayout:
    """Everything needed to build an adapter module for a state dict."""

    family: str  # "sd15" | "sdxl"
    variant: str  # BASE | PLUS
    cross_dim: int  # text-context width the image tokens live in
    feature_dim: int  # width of the CLIP vision feature the projection reads
    tokens: int  # image tokens per image
    layer_dims: tuple[int, ...]  # inner width of each cross-attention layer, in diffusers order
    resampler: ResamplerShape | None = None

    @property
    def feature_name(self) -> str:
        """Which CLIP vision output feeds the projection (names as in ComfyUI's CLIP_VISION output)."""
        return "image_embeds" if self.variant == BASE else "penultimate_hidden_states"

    @property
    def standard_depth(self) -> bool:
        return len(self.layer_dims) == STANDARD_LAYERS[self.family]

    def describe(self) -> str:
        depth = "" if self.standard_depth else f", non-standard depth (full {self.family} has {STANDARD_LAYERS[self.family]})"
        return (f"{self.family} {self.variant}: {self.tokens} tokens x {self.cross_dim} from {self.feature_dim}-d "
                f"CLIP {self.feature_name}, {len(self.layer_dims)} cross-attention layers{depth}")


def _summary(state: Mapping[str, torch.Tensor], limit: int = 8) -> str:
    prefixes = sorted({k.split(".")[0] for k in state})
    sample = ", ".join(f"{k} {tuple(state[k].shape)}" for k in sorted(state)[:limit])
    return f"{len(state)} tensors, top-level prefixes {prefixes}; e.g. {sample}"


def _fail(what: str, state: Mapping[str, torch.Tensor]) -> ModelFormatError:
    return ModelFormatError(
        f"not a supported IP-Adapter layout ({what}). Supported: SD1.5/SDXL base "
        f"(image_proj.proj + image_proj.norm) and plus (image_proj.latents Resampler) with ip_adapter.N.to_k_ip/"
        f"to_v_ip. Found: {_summary(state)}"
    )


def _layer_dims(state: Mapping[str, torch.Tensor], cross_dim: int) -> tuple[int, ...]:
    numbers: dict[int, dict[str, tuple[int, ...]]] = {}
    for key, tensor in state.items():
        match = _IP_KEY.match(key)
        if match:
            numbers.setdefault(int(match.group(1)), {})[match.group(2)] = tuple(tensor.shape)
        elif key.startswith("ip_adapter."):
            raise _fail(f"unexpected adapter key {key!r}", state)
    if not numbers:
        raise _fail("no ip_adapter.N.to_k_ip.weight keys", state)
    expected = list(range(1, 2 * len(numbers), 2))
    if sorted(numbers) != expected:
        raise _fail(f"cross-attention layers numbered {sorted(numbers)[:6]}..., expected odd numbers 1..{expected[-1]}",
                    state)
    dims = []
    for number in expected:
        shapes = numbers[number]
        k, v = shapes.get("to_k_ip"), shapes.get("to_v_ip")
        if k is None or v is None or k != v or len(k) != 2 or k[1] != cross_dim:
            raise _fail(f"layer {number}: to_k_ip {k} / to_v_ip {v}, expected equal [inner, {cross_dim}]", state)
        dims.append(k[0])
    return tuple(dims)


def _resampler(state: Mapping[str, torch.Tensor]) -> tuple[int, int, int, ResamplerShape]:
    """(feature_dim, cross_dim, tokens, shape) of a plus projection."""
    required = ("image_proj.latents", "image_proj.proj_in.weight", "image_proj.proj_out.weight",
                "image_proj.norm_out.weight")
    missing = [key for key in required if key not in state]
    if missing:
        raise _fail(f"plus projection without {missing}", state)
    latents = state["image_proj.latents"].shape
    proj_in, proj_out = state["image_proj.proj_in.weight"].shape, state["image_proj.proj_out.weight"].shape
    if len(latents) != 3 or latents[0] != 1:
        raise _fail(f"image_proj.latents has shape {tuple(latents)}, expected [1, tokens, dim]", state)
    dim = latents[2]
    depth = len({int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))})
    if depth == 0:
        raise _fail("plus projection without image_proj.layers", state)
    q = state.get("image_proj.layers.0.0.to_q.weight")
    ff = state.get("image_proj.layers.0.1.1.weight")
    if q is None or ff is None or q.shape[0] % RESAMPLER_HEAD_DIM or ff.shape[0] % dim:
        raise _fail("plus projection layers are not perceiver attention + feed-forward", state)
    shape = ResamplerShape(dim=dim, depth=depth, heads=q.shape[0] // RESAMPLER_HEAD_DIM,
                          head_dim=RESAMPLER_HEAD_DIM, ff_mult=ff.shape[0] // dim)
    return proj_in[1], proj_out[0], latents[1], shape


def detect_layout(state: Mapping[str, torch.Tensor]) -> AdapterLayout:
    """The layout of a flat IP-Adapter state dict; ``ModelFormatError`` listing what was found otherwise."""
    if "image_proj.latents" in state:
        feature_dim, cross_dim, tokens, resampler = _resampler(state)
        variant = PLUS
    elif "image_proj.proj.weight" in state and "image_proj.norm.weight" in state:
        cross_dim = state["image_proj.norm.weight"].shape[0]
        out_dim, feature_dim = state["image_proj.proj.weight"].shape
        if out_dim % cross_dim:
            raise _fail(f"image_proj.proj gives {out_dim} values, not a multiple of the norm width {cross_dim}", state)
        tokens, resampler, variant = out_dim // cross_dim, None, BASE
    else:
        raise _fail("no image_proj.proj/norm (base) or image_proj.latents (plus) keys", state)
    family = FAMILIES.get(cross_dim)
    if family is None:
        raise _fail(f"image tokens are {cross_dim} wide; SD1.5 uses 768, SDXL 2048", state)
    layer_dims = _layer_dims(state, cross_dim)
    for other, count in STANDARD_LAYERS.items():
        if other != family and len(layer_dims) == count:
            raise _fail(f"{cross_dim}-wide tokens ({family}) but {count} cross-attention layers ({other})", state)
    return AdapterLayout(family, variant, cross_dim, feature_dim, tokens, layer_dims, resampler)
