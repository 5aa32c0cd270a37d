"""A copy of the tiny diffusers pipeline whose UNet has SD1.5's widths (320 channels, 768-wide
text, two levels; emoeditor_assets.UNET_CONFIG with 4 input channels), which ComfyUI's model
detection recognises as SD15, plus a base visual prompt adapter for its attention layers.
The VAE, text encoder, tokenizer, scheduler and image encoder are the tiny pipeline's
(linked, not copied). Used to train a LoRA with train-dpo and load it in real ComfyUI."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch

from emotion_core.testing.adapter_assets import adapter_shapes, random_state_dict
from emotion_core.testing.diffusers_assets import CROSS_DIM, VISION_PROJECTION
from emotion_core.testing.emoeditor_assets import UNET_CONFIG, random_state
from emotion_core.weights import save_safetensors

UNET_4CH = {**UNET_CONFIG, "in_channels": 4}


def write_sd15_width_pipeline(tiny: dict, folder: Path, seed: int = 0) -> dict:
    """``{"pipeline", "adapter_base", "unet_state"}`` (the UNet's diffusers state dict)."""
    from diffusers import UNet2DConditionModel

    from emotion_core.visual_prompt.diffusers_unet import diffusers_attn2_sites

    folder.mkdir(parents=True)
    source = Path(tiny["pipeline"])
    for entry in source.iterdir():
        if entry.name not in ("unet", "ip_adapter"):
            os.symlink(entry, folder / entry.name)
    with torch.device("meta"):
        shape = UNet2DConditionModel(**UNET_4CH)
    state = random_state(shape, torch.Generator().manual_seed(zlib.crc32(f"sd15_width:{seed}".encode())),
                         torch.float32)
    unet = UNet2DConditionModel(**UNET_4CH)
    unet.load_state_dict(state)
    unet.save_pretrained(folder / "unet")
    shapes = adapter_shapes("base", CROSS_DIM, [site.inner_dim for site in diffusers_attn2_sites(unet)])
    shapes["image_proj.proj.weight"] = (4 * CROSS_DIM, VISION_PROJECTION)
    adapter = save_safetensors(random_state_dict(shapes, seed=seed, dtype=torch.float32),
                               folder / "adapter.safetensors")
    return {"pipeline": folder, "adapter_base": adapter, "unet_state": state}
