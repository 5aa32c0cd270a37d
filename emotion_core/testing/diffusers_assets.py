"""A tiny random-weight Stable Diffusion pipeline in diffusers format, for the
standalone path (``emotion-director generate``) and its tests.

Shaped like diffusers' own ``get_dummy_components`` but kept compatible with
this project's formats: the text context is 768 wide (SD1.5), because adapter
layout detection knows families by that width; everything else is tiny
(UNet 32/64 channels with 7 cross-attention layers like the test checkpoint,
a 4-level 32-channel VAE so images are 8x the latent size as in SD1.5, a
one-layer CLIP text encoder over the first 1000 tokens of CLIP's BPE
vocabulary). Heads (8 in the UNet, 64-wide in the text encoder) and norm
groups (32) are SD1.5's, so the same folder also round-trips through an
original-layout single file. About 26 MB with the adapters; nothing is downloaded.

Next to the pipeline (not listed in ``model_index.json``, so the pipeline
never loads them): ``image_encoder/``, a tiny ``CLIPVisionModelWithProjection``
(diffusers' IP-Adapter image encoder layout), and ``ip_adapter/`` with a base
and a plus adapter in the public IP-Adapter layout whose ``ip_adapter.N``
layers match this UNet's attn2 widths and whose projections read that
encoder's widths.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

from ..pipeline.sd15_configs import NORM_GROUPS, SCHEDULER_CONFIG, TEXT_HEAD_DIM, UNET_HEADS, model_index
from ..pipeline.tokenizer_files import write_clip_tokenizer
from ..weights import save_safetensors
from .adapter_assets import adapter_shapes, random_state_dict

# Paths inside the pipeline folder.
IMAGE_ENCODER = "image_encoder"
ADAPTERS = {"base": "ip_adapter/test_ip_adapter_base.safetensors",
            "plus": "ip_adapter/test_ip_adapter_plus.safetensors"}
# Where make_test_models puts the folder under models/ (ComfyUI's diffusers folder).
PIPELINE_DIR = "diffusers/test_sd15_tiny"

TEXT_VOCAB = 1000
CROSS_DIM = 768
VISION_WIDTH = VISION_PROJECTION = 32


def _seeded(seed: int, role: str) -> None:
    torch.manual_seed(zlib.crc32(f"{role}:{seed}".encode()))


def _unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_DIM, attention_head_dim=UNET_HEADS, norm_num_groups=NORM_GROUPS,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=NORM_GROUPS, sample_size=64,
    )


def _text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=TEXT_VOCAB, hidden_size=CROSS_DIM, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=CROSS_DIM // TEXT_HEAD_DIM, max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=TEXT_VOCAB - 2, eos_token_id=TEXT_VOCAB - 1, pad_token_id=1, projection_dim=CROSS_DIM,
    )
    return CLIPTextModel(config)


def _image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=VISION_WIDTH, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8, projection_dim=VISION_PROJECTION,
                              hidden_act="quick_gelu")
    return CLIPVisionModelWithProjection(config)


def _adapter_state(variant: str, layer_dims: list[int], seed: int) -> dict[str, torch.Tensor]:
    if variant == "base":
        shapes = adapter_shapes("base", CROSS_DIM, layer_dims)
        shapes["image_proj.proj.weight"] = (4 * CROSS_DIM, VISION_PROJECTION)
    else:
        shapes = adapter_shapes("plus", CROSS_DIM, layer_dims, resampler_dim=64, resampler_heads=1, depth=1)
        shapes["image_proj.proj_in.weight"] = (64, VISION_WIDTH)
    return random_state_dict(shapes, seed=zlib.crc32(f"adapter_{variant}:{seed}".encode()), dtype=torch.float32)


def write_tiny_sd_pipeline(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the pipeline folder (plus image encoder and adapters inside it); returns
    ``{"pipeline", "image_encoder", "adapter_base", "adapter_plus"}`` -> path. Deterministic for a seed."""
    from diffusers import __version__ as diffusers_version

    from ..visual_prompt.diffusers_unet import diffusers_attn2_sites

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        _seeded(seed, "unet")
        unet = _unet()
        _seeded(seed, "vae")
        vae = _vae()
        _seeded(seed, "text_encoder")
        text_encoder = _text_encoder()
        _seeded(seed, "image_encoder")
        image_encoder = _image_encoder()
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    image_encoder.save_pretrained(folder / IMAGE_ENCODER)
    write_clip_tokenizer(folder / "tokenizer", TEXT_VOCAB)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=1))
    (folder / "model_index.json").write_text(json.dumps(model_index(diffusers_version), indent=1))
    dims = [site.inner_dim for site in diffusers_attn2_sites(unet)]
    written = {"pipeline": folder, "image_encoder": folder / IMAGE_ENCODER}
    for variant, name in ADAPTERS.items():
        metadata = {"role": f"adapter_{variant}", "layout": f"ip-adapter sd15 {variant} (tiny diffusers test UNet)",
                    "seed": seed, "random_weights": True}
        written[f"adapter_{variant}"] = save_safetensors(_adapter_state(variant, dims, seed), folder / name, metadata)
    return written
