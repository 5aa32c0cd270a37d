"""Read a Flux IP-Adapter state dict's format and widths from its keys and shapes.

Two public formats, both with no config in the file:

- XLabs (XLabs-AI/flux-ip-adapter, ``ip_adapter.safetensors``):
  ``ip_adapter_proj_model.proj.weight [tokens*4096, 768]`` + ``.norm`` (4 tokens from
  CLIP ViT-L/14 ``image_embeds``), and per double block
  ``double_blocks.{i}.processor.ip_adapter_double_stream_{k,v}_proj.{weight,bias}
  [3072, 4096]``. The image attention is added to the block's image stream after the block.
- InstantX (InstantX/FLUX.1-dev-IP-Adapter, ``ip-adapter.bin`` = {image_proj, ip_adapter}):
  ``image_proj.proj.0 [2*1152, 1152]``, ``image_proj.proj.2 [128*4096, 2*1152]``,
  ``image_proj.norm [4096]`` (128 tokens from SigLIP so400m's pooled output), and
  ``ip_adapter.{n}.to_{k,v}_ip.weight [3072, 4096]`` for every double block, then every
  single block (n = 0..56 on Flux.1). Keys/values are RMS-normalised per head and the image
  attention is added to the block's attention output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import InvalidInputError, ModelFormatError

FLUX = "flux"
XLABS, INSTANTX = "xlabs", "instantx"
# Flux.1's block counts; other counts are accepted when the model has them.
FLUX1_DOUBLE, FLUX1_SINGLE = 19, 38
_FEATURES = {XLABS: "CLIP ViT-L/14 image_embeds", INSTANTX: "SigLIP so400m pooled output"}
_XLABS_KEY = re.compile(r"^double_blocks\.(\d+)\.processor\.ip_adapter_double_stream_(k|v)_proj\.(weight|bias)$")
_INSTANTX_KEY = re.compile(r"^ip_adapter\.(\d+)\.to_(k|v)_ip\.weight$")


@dataclass(frozen=True)
class FluxAdapterLayout:
    """Everything needed to build a Flux IP-Adapter module for a state dict."""

    variant: str  # XLABS | INSTANTX
    cross_dim: int  # width of the image tokens (Flux's T5 context width, 4096)
    feature_dim: int  # width of the image feature the projection reads
    tokens: int  # image tokens per image
    hidden: int  # the DiT's hidden width (3072 on Flux.1)
    layers: int  # XLabs: double blocks; InstantX: double + single blocks
    family: str = FLUX

    @property
    def feature_name(self) -> str:
        return "image_embeds"

    @property
    def layer_dims(self) -> tuple[int, ...]:
        return (self.hidden,) * self.layers

    @property
    def feature_description(self) -> str:
        return _FEATURES[self.variant]

    def describe(self) -> str:
        where = "double blocks" if self.variant == XLABS else "double + single blocks"
        return (f"flux {self.variant}: {self.tokens} tokens x {self.cross_dim} from {self.feature_dim}-d "
                f"{self.feature_description}, {self.layers} {where} of width {self.hidden}")


def is_flux_adapter_state(state: Mapping[str, torch.Tensor]) -> bool:
    return "ip_adapter_proj_model.proj.weight" in state or "image_proj.proj.0.weight" in state


def _fail(what: str, state: Mapping[str, torch.Tensor]) -> ModelFormatError:
    sample = ", ".join(f"{k} {tuple(state[k].shape)}" for k in sorted(state)[:6])
    return ModelFormatError(
        f"not a supported Flux IP-Adapter layout ({what}). Supported: XLabs (ip_adapter_proj_model.* + "
        f"double_blocks.N.processor.ip_adapter_double_stream_k/v_proj.*) and InstantX (image_proj.proj.0/2 + "
        f"image_proj.norm + ip_adapter.N.to_k_ip/to_v_ip). Found {len(state)} tensors, e.g. {sample}"
    )


def _numbered(state, pattern: re.Pattern, parts: tuple[str, ...], cross_dim: int) -> tuple[int, int]:
    """(layer count, hidden width) of consecutively numbered K/V projections reading ``cross_dim``."""
    shapes: dict[int, dict[tuple, tuple[int, ...]]] = {}
    for key, tensor in state.items():
        match = pattern.match(key)
        if match:
            shapes.setdefault(int(match.group(1)), {})[match.groups()[1:]] = tuple(tensor.shape)
    if not shapes:
        raise _fail("no per-block key/value projections", state)
    if sorted(shapes) != list(range(len(shapes))):
        raise _fail(f"blocks numbered {sorted(shapes)[:6]}..., expected 0..{len(shapes) - 1}", state)
    hidden = None
    for number, found in shapes.items():
        if set(found) != set(parts):
            raise _fail(f"block {number} has {sorted(found)}, expected {sorted(parts)}", state)
        weight = found[parts[0]]
        hidden = hidden or weight[0]
        for part, shape in found.items():
            expected = (hidden,) if part[-1] == "bias" else (hidden, cross_dim)
            if shape != expected:
                raise _fail(f"block {number} {part} has shape {shape}, expected {expected}", state)
    return len(shapes), hidden


def detect_flux_layout(state: Mapping[str, torch.Tensor]) -> FluxAdapterLayout:
    """The layout of a flat Flux IP-Adapter state dict; ``ModelFormatError`` naming what was found otherwise."""
    if "ip_adapter_proj_model.proj.weight" in state:
        if "ip_adapter_proj_model.norm.weight" not in state:
            raise _fail("ip_adapter_proj_model without norm", state)
        cross_dim = state["ip_adapter_proj_model.norm.weight"].shape[0]
        out_dim, feature_dim = state["ip_adapter_proj_model.proj.weight"].shape
        parts = tuple((kv, kind) for kv in "kv" for kind in ("weight", "bias"))
        layers, hidden = _numbered(state, _XLABS_KEY, parts, cross_dim)
        variant = XLABS
    elif "image_proj.proj.0.weight" in state:
        if "image_proj.proj.2.weight" not in state or "image_proj.norm.weight" not in state:
            raise _fail("image_proj.proj.0 without image_proj.proj.2 / image_proj.norm", state)
        cross_dim = state["image_proj.norm.weight"].shape[0]
        first, second = state["image_proj.proj.0.weight"].shape, state["image_proj.proj.2.weight"].shape
        feature_dim = first[1]
        if second[1] != first[0]:
            raise _fail(f"image_proj.proj.2 reads {second[1]} values but proj.0 gives {first[0]}", state)
        out_dim = second[0]
        layers, hidden = _numbered(state, _INSTANTX_KEY, (("k",), ("v",)), cross_dim)
        variant = INSTANTX
    else:
        raise _fail("no ip_adapter_proj_model (XLabs) or image_proj.proj.0 (InstantX) keys", state)
    if out_dim % cross_dim:
        raise _fail(f"the projection gives {out_dim} values, not a multiple of the token width {cross_dim}", state)
    return FluxAdapterLayout(variant, cross_dim, feature_dim, out_dim // cross_dim, hidden, layers)


def check_flux_bank(kind_name: str, feature: str, width: int, layout: FluxAdapterLayout,
                    pooled_width: int | None = None) -> None:
    """A prompt bank for a Flux IP-Adapter: XLabs reads pooled CLIP ViT-L/14 ``image_embeds``, so an
    ``ip-adapter`` bank built with that CLIP serves it; InstantX reads SigLIP's attention-pooled output,
    which a ``flux-redux`` bank keeps as its pooled centres (``pooled_width``); anything else is an
    error naming both families."""
    wanted = f"{layout.feature_dim}-d {layout.feature_description}"
    if kind_name == "flux-redux" and layout.variant == INSTANTX:
        if pooled_width != layout.feature_dim:
            raise InvalidInputError(f"this flux-redux bank's pooled SigLIP centres are {pooled_width}-d but this "
                                    f"InstantX IP-Adapter reads {wanted}")
        return
    if kind_name == "flux-redux":
        raise InvalidInputError(f"this prompt bank is for Flux's Redux path (SigLIP sequences: Emotion Redux Prompt -> "
                               f"Apply Style Model), not for a Flux IP-Adapter, which reads {wanted}")
    if layout.variant != XLABS or kind_name != "ip-adapter":
        family = "SD1.5/SDXL IP-Adapter plus" if kind_name == "ip-adapter-plus" else "SD1.5/SDXL IP-Adapter"
        raise InvalidInputError(f"this prompt bank was built for {family} adapters ({feature}), but this Flux "
                               f"{layout.variant} IP-Adapter reads {wanted}; on Flux use a bank built with CLIP "
                               "ViT-L/14 for XLabs adapters, or the Redux path")
    if width != layout.feature_dim:
        source = "CLIP ViT-H/14, the SD1.5/SDXL IP-Adapters' image encoder" if width == 1024 else "another encoder"
        raise InvalidInputError(f"this prompt bank holds {width}-d image_embeds ({source}) but this Flux XLabs "
                               f"IP-Adapter reads {wanted}; build the bank with CLIP ViT-L/14")
