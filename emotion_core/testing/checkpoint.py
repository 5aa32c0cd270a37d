"""Random-weight SD1.5 checkpoint and ViT-H/14 CLIP-vision file for real-ComfyUI tests.

Both files are built tensor by tensor from shape tables written here (no
download, no ComfyUI import), in the key layouts ComfyUI's loaders detect.

SD1.5 checkpoint (original LDM key names). ComfyUI's ``model_detection``
reads the UNet config from the keys: ``model_channels`` from
``input_blocks.0.0.weight``, ``context_dim`` from the first ``attn2.to_k``,
``num_res_blocks``/``channel_mult``/``transformer_depth`` by walking
``input_blocks`` (a new level starts at an ``op`` downsample), and picks SD15
for 320 channels + 768 context + conv ``proj_in`` + 4 input channels. The
depth is free, so the UNet here has two levels (320, 640), one res block and
one transformer per level, and a middle block with a transformer: 107M
parameters instead of 860M, with real down/upsampling and two attention widths
so block-indexed patches are exercised. Its cross-attention (attn2) blocks are
listed in ``UNET_ATTN2_BLOCKS`` for tests that patch them. The text encoder
(CLIP ViT-L/14 text, 12 x 768, vocab 49408; 123M) and the VAE (84M) keep the
full SD1.5 shapes because ComfyUI builds both from fixed configs. 0.63 GB in
fp16.

CLIP vision. ``comfy.clip_vision.load_clipvision_from_sd`` picks its config
by key presence only: ``vision_model.encoder.layers.30.layer_norm1.weight``
(without layer 47) selects ``clip_vision_config_h.json`` (32 layers, width
1280, MLP 5120, patch 14, projection 1024). The model is always built from
that config and loaded with ``strict=False``: a file with fewer layers or only
the marker key is accepted (with a "missing clip vision" warning), but the
missing weights stay uninitialised memory (ComfyUI's ops skip init), so
``encode_image`` returns garbage or NaN; a narrower width fails with a size
mismatch. The smallest file that is accepted and runs reproducibly is
therefore the full ViT-H tensor set: 632M parameters, 1.26 GB in fp16
(2.5 GB in fp32).

Weights: linear/conv ~ N(0, 1/fan_in), norms 1/0, embeddings N(0, 0.02), so
activations stay finite through the random networks. Every tensor comes from
one ``torch.Generator`` per file, seeded from (seed, role): deterministic.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from pathlib import Path
from dataclasses import dataclass
from typing import Mapping

import torch

from ..weights import save_safetensors

log = logging.getLogger(__name__)

DTYPE = torch.float16

# UNet: SD1.5 base width and context, shallow depth (see module docstring).
UNET_MODEL_CHANNELS = 320
UNET_CHANNEL_MULT = (1, 2)
UNET_RES_BLOCKS = 1
UNET_CONTEXT_DIM = 768
# (block, index, channels) of every transformer, i.e. every attn2 patch key this UNet calls.
UNET_ATTN2_BLOCKS = (
    ("input", 1, 320),
    ("input", 3, 640),
    ("middle", 0, 640),
    ("output", 0, 640),
    ("output", 1, 640),
    ("output", 2, 320),
    ("output", 3, 320),
)

_ONES = "ones"
_ZEROS = "zeros"


class TensorShapes:
    """Ordered tensor name -> (shape, init); init is a std, ``ones`` or ``zeros``."""

    def __init__(self) -> None:
        self.specs: dict[str, tuple[tuple[int, ...], float | str]] = {}

    def param(self, name: str, shape: tuple[int, ...], init: float | str) -> None:
        if name in self.specs:
            raise ValueError(f"duplicate tensor name {name}")
        self.specs[name] = (shape, init)

    def weight(self, name: str, shape: tuple[int, ...], bias: bool = True) -> None:
        """A linear or conv layer: fan-in scaled weight, zero bias."""
        self.param(f"{name}.weight", shape, 1.0 / math.sqrt(math.prod(shape[1:])))
        if bias:
            self.param(f"{name}.bias", (shape[0],), _ZEROS)

    def linear(self, name: str, out_features: int, in_features: int, bias: bool = True) -> None:
        self.weight(name, (out_features, in_features), bias)

    def conv(self, name: str, out_channels: int, in_channels: int, kernel: int) -> None:
        self.weight(name, (out_channels, in_channels, kernel, kernel))

    def norm(self, name: str, channels: int) -> None:
        self.param(f"{name}.weight", (channels,), _ONES)
        self.param(f"{name}.bias", (channels,), _ZEROS)

    def build(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        tensors = {}
        for name, (shape, init) in self.specs.items():
            if init == _ONES:
                tensors[name] = torch.ones(shape, dtype=DTYPE)
            elif init == _ZEROS:
                tensors[name] = torch.zeros(shape, dtype=DTYPE)
            else:
                tensors[name] = torch.empty(shape, dtype=DTYPE).normal_(0.0, init, generator=generator)
        return tensors


def _unet_res_block(s: TensorShapes, p: str, channels_in: int, channels_out: int, emb_dim: int) -> None:
    s.norm(f"{p}in_layers.0", channels_in)
    s.conv(f"{p}in_layers.2", channels_out, channels_in, 3)
    s.linear(f"{p}emb_layers.1", channels_out, emb_dim)
    s.norm(f"{p}out_layers.0", channels_out)
    s.conv(f"{p}out_layers.3", channels_out, channels_out, 3)
    if channels_in != channels_out:
        s.conv(f"{p}skip_connection", channels_out, channels_in, 1)


def _unet_transformer(s: TensorShapes, p: str, channels: int, depth: int, layout: "UNetLayout") -> None:
    s.norm(f"{p}norm", channels)
    if layout.linear_projection:  # SDXL: Linear proj_in/proj_out; SD1.5: 1x1 conv
        s.linear(f"{p}proj_in", channels, channels)
    else:
        s.conv(f"{p}proj_in", channels, channels, 1)
    for index in range(depth):
        b = f"{p}transformer_blocks.{index}."
        for attn, context in (("attn1", channels), ("attn2", layout.context_dim)):
            s.linear(f"{b}{attn}.to_q", channels, channels, bias=False)
            s.linear(f"{b}{attn}.to_k", channels, context, bias=False)
            s.linear(f"{b}{attn}.to_v", channels, context, bias=False)
            s.linear(f"{b}{attn}.to_out.0", channels, channels)
        s.linear(f"{b}ff.net.0.proj", 8 * channels, channels)  # GEGLU: value and gate
        s.linear(f"{b}ff.net.2", channels, 4 * channels)
        for i in (1, 2, 3):
            s.norm(f"{b}norm{i}", channels)
    if layout.linear_projection:
        s.linear(f"{p}proj_out", channels, channels)
    else:
        s.conv(f"{p}proj_out", channels, channels, 1)


@dataclass(frozen=True)
class UNetLayout:
    """What ComfyUI's ``model_detection`` reads from an original-layout UNet: per level its width
    multiplier and the transformer depth of its input and output blocks, the middle depth, the
    context width, Linear or conv projections, and the ADM (pooled + size) input width."""

    model_channels: int
    channel_mult: tuple[int, ...]
    res_blocks: int
    input_depth: tuple[int, ...]  # per level
    output_depth: tuple[int, ...]  # per level (levels in input order)
    middle_depth: int
    context_dim: int
    linear_projection: bool = False
    adm_in_channels: int | None = None

    @property
    def emb_dim(self) -> int:
        return 4 * self.model_channels

    def attn2_blocks(self) -> tuple[tuple[str, int, int, int], ...]:
        """(block, index, channels, transformer depth) of every transformer, in patch-key terms."""
        blocks, block = [], 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.res_blocks):
                if self.input_depth[level]:
                    blocks.append(("input", block, self.model_channels * mult, self.input_depth[level]))
                block += 1
            block += level != len(self.channel_mult) - 1
        blocks.append(("middle", 0, self.model_channels * self.channel_mult[-1], self.middle_depth))
        block = 0
        for level in reversed(range(len(self.channel_mult))):
            for _ in range(self.res_blocks + 1):
                if self.output_depth[level]:
                    blocks.append(("output", block, self.model_channels * self.channel_mult[level],
                                   self.output_depth[level]))
                block += 1
        return tuple(blocks)


SD15_LAYOUT = UNetLayout(UNET_MODEL_CHANNELS, UNET_CHANNEL_MULT, UNET_RES_BLOCKS, (1, 1), (1, 1), 1,
                         UNET_CONTEXT_DIM)


def unet_shapes(s: TensorShapes, layout: UNetLayout, p: str = "model.diffusion_model.") -> None:
    """An original-layout (LDM) UNet with ``layout``'s levels, depths and widths."""
    mc, emb = layout.model_channels, layout.emb_dim
    s.linear(f"{p}time_embed.0", emb, mc)
    s.linear(f"{p}time_embed.2", emb, emb)
    if layout.adm_in_channels:
        s.linear(f"{p}label_emb.0.0", emb, layout.adm_in_channels)
        s.linear(f"{p}label_emb.0.2", emb, emb)
    s.conv(f"{p}input_blocks.0.0", mc, 4, 3)
    skip_channels = [mc]
    ch, block = mc, 1
    for level, mult in enumerate(layout.channel_mult):
        for _ in range(layout.res_blocks):
            _unet_res_block(s, f"{p}input_blocks.{block}.0.", ch, mc * mult, emb)
            ch = mc * mult
            if layout.input_depth[level]:
                _unet_transformer(s, f"{p}input_blocks.{block}.1.", ch, layout.input_depth[level], layout)
            skip_channels.append(ch)
            block += 1
        if level != len(layout.channel_mult) - 1:
            s.conv(f"{p}input_blocks.{block}.0.op", ch, ch, 3)
            skip_channels.append(ch)
            block += 1
    _unet_res_block(s, f"{p}middle_block.0.", ch, ch, emb)
    _unet_transformer(s, f"{p}middle_block.1.", ch, layout.middle_depth, layout)
    _unet_res_block(s, f"{p}middle_block.2.", ch, ch, emb)
    block = 0
    for level, mult in reversed(list(enumerate(layout.channel_mult))):
        for i in range(layout.res_blocks + 1):
            _unet_res_block(s, f"{p}output_blocks.{block}.0.", ch + skip_channels.pop(), mc * mult, emb)
            ch = mc * mult
            index = 1
            if layout.output_depth[level]:
                _unet_transformer(s, f"{p}output_blocks.{block}.1.", ch, layout.output_depth[level], layout)
                index = 2
            if level and i == layout.res_blocks:
                s.conv(f"{p}output_blocks.{block}.{index}.conv", ch, ch, 3)
            block += 1
    s.norm(f"{p}out.0", ch)
    s.conv(f"{p}out.2", 4, ch, 3)


def _vae_res_block(s: TensorShapes, p: str, channels_in: int, channels_out: int) -> None:
    s.norm(f"{p}norm1", channels_in)
    s.conv(f"{p}conv1", channels_out, channels_in, 3)
    s.norm(f"{p}norm2", channels_out)
    s.conv(f"{p}conv2", channels_out, channels_out, 3)
    if channels_in != channels_out:
        s.conv(f"{p}nin_shortcut", channels_out, channels_in, 1)


def _vae_mid(s: TensorShapes, p: str, channels: int) -> None:
    _vae_res_block(s, f"{p}block_1.", channels, channels)
    s.norm(f"{p}attn_1.norm", channels)
    for name in ("q", "k", "v", "proj_out"):
        s.conv(f"{p}attn_1.{name}", channels, channels, 1)
    _vae_res_block(s, f"{p}block_2.", channels, channels)


def vae_shapes(s: TensorShapes, p: str = "first_stage_model.", latent_channels: int = 4,
               quant_convs: bool = True) -> None:
    """SD AutoencoderKL (ch 128, ch_mult (1, 2, 4, 4), 2 res blocks; ComfyUI's fixed config): SD1.5
    and SDXL with 4 latent channels and quant convs; Flux's ``ae`` with 16 and none."""
    base, mults, res_blocks, z = 128, (1, 2, 4, 4), 2, latent_channels
    ch = base
    s.conv(f"{p}encoder.conv_in", ch, 3, 3)
    for level, mult in enumerate(mults):
        for i in range(res_blocks):
            _vae_res_block(s, f"{p}encoder.down.{level}.block.{i}.", ch, base * mult)
            ch = base * mult
        if level != len(mults) - 1:
            s.conv(f"{p}encoder.down.{level}.downsample.conv", ch, ch, 3)
    _vae_mid(s, f"{p}encoder.mid.", ch)
    s.norm(f"{p}encoder.norm_out", ch)
    s.conv(f"{p}encoder.conv_out", 2 * z, ch, 3)
    if quant_convs:
        s.conv(f"{p}quant_conv", 2 * z, 2 * z, 1)
        s.conv(f"{p}post_quant_conv", z, z, 1)
    s.conv(f"{p}decoder.conv_in", ch, z, 3)
    _vae_mid(s, f"{p}decoder.mid.", ch)
    for level in reversed(range(len(mults))):
        for i in range(res_blocks + 1):
            _vae_res_block(s, f"{p}decoder.up.{level}.block.{i}.", ch, base * mults[level])
            ch = base * mults[level]
        if level:
            s.conv(f"{p}decoder.up.{level}.upsample.conv", ch, ch, 3)
    s.norm(f"{p}decoder.norm_out", ch)
    s.conv(f"{p}decoder.conv_out", 3, ch, 3)


def clip_encoder_layer(s: TensorShapes, p: str, width: int, mlp: int) -> None:
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        s.linear(f"{p}self_attn.{name}", width, width)
    s.norm(f"{p}layer_norm1", width)
    s.linear(f"{p}mlp.fc1", mlp, width)
    s.linear(f"{p}mlp.fc2", width, mlp)
    s.norm(f"{p}layer_norm2", width)


def _clip_text(s: TensorShapes, p: str = "cond_stage_model.transformer.text_model.") -> None:
    """CLIP ViT-L/14 text tower, HF names (the SD1.5 checkpoint layout)."""
    s.param(f"{p}embeddings.token_embedding.weight", (49408, 768), 0.02)
    s.param(f"{p}embeddings.position_embedding.weight", (77, 768), 0.02)
    for i in range(12):
        clip_encoder_layer(s, f"{p}encoder.layers.{i}.", 768, 3072)
    s.norm(f"{p}final_layer_norm", 768)


def _clip_vision_h(s: TensorShapes) -> None:
    """CLIP ViT-H/14 vision tower + projection (IP-Adapter SD1.5 image encoder), HF names."""
    width, layers, patch, tokens = 1280, 32, 14, (224 // 14) ** 2 + 1
    p = "vision_model."
    s.param(f"{p}embeddings.class_embedding", (width,), 0.02)
    s.weight(f"{p}embeddings.patch_embedding", (width, 3, patch, patch), bias=False)
    s.param(f"{p}embeddings.position_embedding.weight", (tokens, width), 0.02)
    s.norm(f"{p}pre_layrnorm", width)  # sic: the HF name
    for i in range(layers):
        clip_encoder_layer(s, f"{p}encoder.layers.{i}.", width, 4 * width)
    s.norm(f"{p}post_layernorm", width)
    s.linear("visual_projection", 1024, width, bias=False)


def generator_for(seed: int, role: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{role}:{seed}".encode()))


def write_shapes(role: str, shapes: TensorShapes, path: Path, seed: int, layout: str) -> Path:
    start = time.perf_counter()
    tensors = shapes.build(generator_for(seed, role))
    save_safetensors(tensors, path, {"role": role, "layout": layout, "seed": seed, "random_weights": True})
    log.info(
        "%s: %d tensors, %.1fM parameters, %.0f MB in %.1f s",
        role, len(tensors), sum(t.numel() for t in tensors.values()) / 1e6,
        path.stat().st_size / 1e6, time.perf_counter() - start,
    )
    return path


def write_test_checkpoint(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """Write the SD1.5 checkpoint and the ViT-H CLIP-vision file under ``models_dir`` at
    ``names["checkpoint"]`` / ``names["clip_vision"]``; returns role -> path. (EmoEditor's
    InstructPix2Pix UNet comes from ``emoeditor_assets``, converted as a user converts it.)"""
    models_dir = Path(models_dir)
    checkpoint = TensorShapes()
    unet_shapes(checkpoint, SD15_LAYOUT)
    vae_shapes(checkpoint)
    _clip_text(checkpoint)
    vision = TensorShapes()
    _clip_vision_h(vision)
    return {
        "checkpoint": write_shapes("checkpoint", checkpoint, models_dir / names["checkpoint"], seed, "sd15-ldm"),
        "clip_vision": write_shapes("clip_vision", vision, models_dir / names["clip_vision"], seed, "clip-vision-vit-h14-hf"),
    }
