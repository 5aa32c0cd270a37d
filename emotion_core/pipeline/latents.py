"""IMAGE (``[B,H,W,C]`` float32 in 0..1) <-> the UNet's latents (VAE latents times the
VAE's scaling factor, diffusers' convention; ComfyUI's LATENT holds them unscaled)."""

from __future__ import annotations

import torch

from ..errors import InvalidInputError
from ..images import as_rgb_batch


def _scale_shift(vae) -> tuple[float, float]:
    shift = getattr(vae.config, "shift_factor", None)
    return float(vae.config.scaling_factor), float(shift or 0.0)


def check_size(pipe, width: int, height: int) -> None:
    factor = pipe.vae_scale_factor
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < factor or value % factor:
            raise InvalidInputError(f"{name} must be a positive multiple of {factor}, got {value}")


@torch.no_grad()
def encode_image(pipe, images: torch.Tensor) -> torch.Tensor:
    """IMAGE -> latents with the distribution's mean (deterministic, like ComfyUI's VAE Encode)."""
    images = as_rgb_batch(images, "init_image")
    check_size(pipe, images.shape[2], images.shape[1])
    vae = pipe.vae
    pixels = images.permute(0, 3, 1, 2).to(vae.device, vae.dtype) * 2.0 - 1.0
    scale, shift = _scale_shift(vae)
    return (vae.encode(pixels).latent_dist.mode() - shift) * scale


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> IMAGE on the CPU."""
    vae = pipe.vae
    scale, shift = _scale_shift(vae)
    pixels = vae.decode(latents.to(vae.device, vae.dtype) / scale + shift).sample
    return (pixels.float() / 2.0 + 0.5).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().contiguous()
