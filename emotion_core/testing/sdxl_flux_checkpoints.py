"""Random-weight SDXL, Flux and SD3.5 diffusion models in the key layouts ComfyUI detects.

Only what ``comfy/model_detection.py`` reads as free is shrunk; every key name and
every block index stays as in the public files, so patches keyed by block (attn2
replace patches, DiT ``patches_replace``) see the real layout.

SDXL (``checkpoints/``, original LDM keys, CheckpointLoaderSimple): ComfyUI's SDXL
entry requires ``model_channels`` 320, ``context_dim`` 2048, ``adm_in_channels`` 2816,
Linear ``proj_in`` and input transformer depths ``[0, 0, 2, 2, 10, 10]``. The channel
multipliers, the middle depth and the output depths are read from the keys, not
required; this file keeps SDXL's real depths everywhere (input 4-8 at depth 2/10,
middle 0 at depth 10, output 0-5 at depth 10/2: 70 attn2 blocks, as a real SDXL
adapter expects) and narrows only the levels to 320 channels each (``channel_mult``
(1, 1, 1) instead of (1, 2, 4)): 0.27B parameters instead of 2.6B. The VAE is SDXL's
(the SD VAE layout, fixed in ComfyUI). No text encoders: ComfyUI builds CLIP-L and
CLIP-G from fixed configs (0.8B parameters), so tests encode with the tiny encoders
of ``text_encoder_assets`` instead (ComfyUI logs "no CLIP/text encoder weights").

Flux (``diffusion_models/`` for UNETLoader + ``vae/``, BFL's key names): ComfyUI fixes
the width (3072, 24 heads, 4096-wide text input) and reads the depth from the keys, so
the model has one double-stream and one single-stream block (0.5B parameters instead
of 12B), a guidance embedding (Flux dev: guidance-distilled) and a 768-wide pooled
input (CLIP-L). The VAE is Flux's 16-channel ``ae`` layout (no quant convs).

SD3.5 (``diffusion_models/``, MMDiT keys): ComfyUI reads the width as 64 x depth
from ``x_embedder``, so two joint blocks at width 128 (SD3.5 Large has 38 at 2432),
with SD3.5's RMS q/k norms, 2048-wide pooled input (CLIP-L + CLIP-G) and 4096-wide
context (T5-XXL / padded CLIP). Its VAE is Flux's 16-channel layout too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .checkpoint import TensorShapes, UNetLayout, unet_shapes, vae_shapes, write_shapes

SDXL_LAYOUT = UNetLayout(
    model_channels=320, channel_mult=(1, 1, 1), res_blocks=2, input_depth=(0, 2, 10),
    output_depth=(0, 2, 10), middle_depth=10, context_dim=2048, linear_projection=True,
    adm_in_channels=2816,
)
# (block, index, channels, depth) of every SDXL transformer: input 4, 5, 7, 8; middle 0; output 0-5.
SDXL_ATTN2_BLOCKS = SDXL_LAYOUT.attn2_blocks()

FLUX_HIDDEN = 3072
FLUX_HEAD_DIM = 128
FLUX_MLP = 4 * FLUX_HIDDEN
FLUX_CONTEXT_DIM = 4096
FLUX_POOLED_DIM = 768
FLUX_DOUBLE_BLOCKS = 1
FLUX_SINGLE_BLOCKS = 1

SD3_DEPTH = 2
SD3_HIDDEN = 64 * SD3_DEPTH
SD3_POOLED_DIM = 2048
SD3_CONTEXT_DIM = 4096
SD3_POS_EMBED_SIZE = 32  # pos_embed_max_size: latents up to 64x64 (512 px)
ONES = "ones"


def _mlp_embedder(s: TensorShapes, p: str, in_dim: int, hidden: int) -> None:
    s.linear(f"{p}in_layer", hidden, in_dim)
    s.linear(f"{p}out_layer", hidden, hidden)


def _qk_norm(s: TensorShapes, p: str, head_dim: int) -> None:
    s.param(f"{p}query_norm.scale", (head_dim,), ONES)
    s.param(f"{p}key_norm.scale", (head_dim,), ONES)


def flux_shapes(s: TensorShapes, p: str = "") -> None:
    """Flux dev (guidance embedding) with BFL's key names and ComfyUI's fixed width."""
    h = FLUX_HIDDEN
    s.linear(f"{p}img_in", h, 16 * 4)
    _mlp_embedder(s, f"{p}time_in.", 256, h)
    _mlp_embedder(s, f"{p}vector_in.", FLUX_POOLED_DIM, h)
    _mlp_embedder(s, f"{p}guidance_in.", 256, h)
    s.linear(f"{p}txt_in", h, FLUX_CONTEXT_DIM)
    for i in range(FLUX_DOUBLE_BLOCKS):
        b = f"{p}double_blocks.{i}."
        for stream in ("img", "txt"):
            s.linear(f"{b}{stream}_mod.lin", 6 * h, h)
            s.linear(f"{b}{stream}_attn.qkv", 3 * h, h)
            _qk_norm(s, f"{b}{stream}_attn.norm.", FLUX_HEAD_DIM)
            s.linear(f"{b}{stream}_attn.proj", h, h)
            s.linear(f"{b}{stream}_mlp.0", FLUX_MLP, h)
            s.linear(f"{b}{stream}_mlp.2", h, FLUX_MLP)
    for i in range(FLUX_SINGLE_BLOCKS):
        b = f"{p}single_blocks.{i}."
        s.linear(f"{b}linear1", 3 * h + FLUX_MLP, h)
        s.linear(f"{b}linear2", h, h + FLUX_MLP)
        _qk_norm(s, f"{b}norm.", FLUX_HEAD_DIM)
        s.linear(f"{b}modulation.lin", 3 * h, h)
    s.linear(f"{p}final_layer.linear", 16 * 4, h)
    s.linear(f"{p}final_layer.adaLN_modulation.1", 2 * h, h)


def _sd3_attention(s: TensorShapes, p: str, h: int) -> None:
    s.linear(f"{p}qkv", 3 * h, h)
    s.param(f"{p}ln_q.weight", (64,), ONES)
    s.param(f"{p}ln_k.weight", (64,), ONES)
    s.linear(f"{p}proj", h, h)


def sd3_shapes(s: TensorShapes, p: str = "") -> None:
    """SD3.5 MMDiT (RMS q/k norms) with ComfyUI's key names; width 64 x depth."""
    h = SD3_HIDDEN
    s.conv(f"{p}x_embedder.proj", h, 16, 2)
    s.param(f"{p}pos_embed", (1, SD3_POS_EMBED_SIZE ** 2, h), 0.02)
    s.linear(f"{p}t_embedder.mlp.0", h, 256)
    s.linear(f"{p}t_embedder.mlp.2", h, h)
    s.linear(f"{p}y_embedder.mlp.0", h, SD3_POOLED_DIM)
    s.linear(f"{p}y_embedder.mlp.2", h, h)
    s.linear(f"{p}context_embedder", h, SD3_CONTEXT_DIM)
    for i in range(SD3_DEPTH):
        b = f"{p}joint_blocks.{i}."
        last = i == SD3_DEPTH - 1
        s.linear(f"{b}x_block.adaLN_modulation.1", 6 * h, h)
        _sd3_attention(s, f"{b}x_block.attn.", h)
        s.linear(f"{b}x_block.mlp.fc1", 4 * h, h)
        s.linear(f"{b}x_block.mlp.fc2", h, 4 * h)
        # the last context block is "pre_only": attention input only, no output projection or MLP
        s.linear(f"{b}context_block.adaLN_modulation.1", (2 if last else 6) * h, h)
        s.linear(f"{b}context_block.attn.qkv", 3 * h, h)
        s.param(f"{b}context_block.attn.ln_q.weight", (64,), ONES)
        s.param(f"{b}context_block.attn.ln_k.weight", (64,), ONES)
        if not last:
            s.linear(f"{b}context_block.attn.proj", h, h)
            s.linear(f"{b}context_block.mlp.fc1", 4 * h, h)
            s.linear(f"{b}context_block.mlp.fc2", h, 4 * h)
    s.linear(f"{p}final_layer.adaLN_modulation.1", 2 * h, h)
    s.linear(f"{p}final_layer.linear", 2 * 2 * 16, h)


def write_sdxl_checkpoint(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """The SDXL checkpoint (UNet + VAE, original keys) at ``names["checkpoint_sdxl"]``."""
    shapes = TensorShapes()
    unet_shapes(shapes, SDXL_LAYOUT)
    vae_shapes(shapes)
    path = Path(models_dir) / names["checkpoint_sdxl"]
    return {"checkpoint_sdxl": write_shapes("checkpoint_sdxl", shapes, path, seed, "sdxl-ldm")}


def write_flux_model(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """The Flux dev-layout transformer (``names["flux_model"]``) and its 16-channel VAE
    (``names["flux_vae"]``); the VAE is SD3.5's too."""
    models_dir = Path(models_dir)
    model = TensorShapes()
    flux_shapes(model)
    vae = TensorShapes()
    vae_shapes(vae, p="", latent_channels=16, quant_convs=False)
    return {
        "flux_model": write_shapes("flux_model", model, models_dir / names["flux_model"], seed, "flux-bfl"),
        "flux_vae": write_shapes("flux_vae", vae, models_dir / names["flux_vae"], seed, "flux-ae"),
    }


def write_sd3_model(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """The SD3.5 MMDiT at ``names["sd3_model"]`` (uses the Flux VAE file)."""
    model = TensorShapes()
    sd3_shapes(model)
    path = Path(models_dir) / names["sd3_model"]
    return {"sd3_model": write_shapes("sd3_model", model, path, seed, "sd3-mmdit")}
