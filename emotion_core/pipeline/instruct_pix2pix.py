"""EmoEditor's InstructPix2Pix pass (``InstructPix2Pix.forward`` of its ip2p.py) on diffusers
components: an 8-channel ``UNet2DConditionModel`` and an ``AutoencoderKL``.

One pass at noise level T (an integer drawn from 700..980 by the loop, ``denoise * 1000``):
1. the image being edited is VAE-encoded with a *sample* of its posterior, times 0.18215;
   the source (the conditioning image) with its posterior's *mode*, unscaled;
2. noise is added at the schedule's first timestep;
3. every step feeds the UNet the noisy latent concatenated with the source's latent (8
   channels) and EmoEditor's emotion tokens in place of text, without classifier-free
   guidance; a DDIM step follows;
4. the result is decoded to 0..1.
The randomness is drawn from one generator in test.py's order (the loop drew T from it
already): the posterior sample, then the noise.

The schedule (``ddim_schedule``) is test.py's trick: DDIM with the SD1.x scheduler config
whose ``num_train_timesteps`` is set to T before ``set_timesteps(steps)``. Its timesteps are
then ``k·(T // steps) + 1`` for k = steps−1 … 0 (so the first is below T, the noise level
the pass starts at) and each DDIM step goes back ``T // steps``, while ``alphas_cumprod``
stay those of the 1000-step schedule; the last step goes to ``alphas_cumprod[0]``.

``image_guidance`` (not EmoEditor's) runs diffusers' InstructPix2Pix three-branch guidance
instead (``guidance.image_guidance_combine``); the branches without an instruction get the
encoder's tokens for a zero direction (no emotion change), as EmoEditor has no text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import InvalidInputError
from ..guidance import image_guidance_combine
from ..images import as_rgb_batch
from .sd15_configs import SCHEDULER_CONFIG, VAE_SCALING_FACTOR

INSTRUCT_PIX2PIX_CHANNELS = 8  # the noisy latent (4) and the source image's latent (4)
TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class ImageGuidance:
    """diffusers' InstructPix2Pix guidance: ``text_scale`` on the instruction, ``image_scale`` on the image;
    ``uncond_tokens`` are the instruction-free branches' tokens."""

    text_scale: float
    image_scale: float
    uncond_tokens: torch.Tensor


@dataclass(frozen=True)
class InstructPix2Pix:
    """The UNet and VAE of an InstructPix2Pix model, in eval mode on one device and dtype."""

    unet: torch.nn.Module
    vae: torch.nn.Module

    def __post_init__(self) -> None:
        check_unet(self.unet.config.in_channels)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def check_unet(channels: int, name: str = "the UNet") -> None:
    """An InstructPix2Pix UNet reads 8 input channels; anything else is an error saying what it is."""
    if channels != INSTRUCT_PIX2PIX_CHANNELS:
        kind = "a text-to-image UNet" if channels == 4 else "an inpainting UNet" if channels == 9 else "a UNet"
        raise InvalidInputError(
            f"{name} reads {channels} latent channels: {kind}, not InstructPix2Pix, which reads "
            f"{INSTRUCT_PIX2PIX_CHANNELS} (the noisy latent and the source image's latent); EmoEditor's is the UNet "
            "of its model_ip2p.pt")


def ddim_schedule(noise_level: int, steps: int):
    """test.py's DDIM schedule for one pass at noise level ``noise_level`` (see module docstring)."""
    from diffusers import DDIMScheduler

    if not 1 <= steps <= noise_level <= TRAIN_TIMESTEPS:
        raise InvalidInputError(f"steps must be between 1 and the noise level {noise_level} (of {TRAIN_TIMESTEPS}), "
                                f"got {steps}")
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)  # alphas_cumprod of 1000 training steps
    scheduler.register_to_config(num_train_timesteps=noise_level)
    scheduler.set_timesteps(steps)
    return scheduler


def _pixels(model: InstructPix2Pix, images: torch.Tensor, name: str) -> torch.Tensor:
    images = as_rgb_batch(images, name)
    factor = model.scale_factor
    if images.shape[1] % factor or images.shape[2] % factor:
        raise InvalidInputError(f"{name} is {images.shape[2]}x{images.shape[1]}; the VAE needs multiples of {factor}")
    return images.permute(0, 3, 1, 2).to(model.device, model.dtype) * 2 - 1


@torch.no_grad()
def edit_pass(model: InstructPix2Pix, tokens: torch.Tensor, image: torch.Tensor, source: torch.Tensor, *,
              noise_level: int, steps: int, generator: torch.Generator,
              guidance: Optional[ImageGuidance] = None) -> torch.Tensor:
    """One pass (see module docstring): IMAGE ``image`` edited with emotion ``tokens`` ``[1,77,768]``,
    conditioned on IMAGE ``source``; returns IMAGE ``[1,H,W,3]`` float32 on the CPU."""
    scheduler = ddim_schedule(noise_level, steps)
    unet, vae = model.unet, model.vae
    posterior = vae.encode(_pixels(model, image, "image to edit")).latent_dist
    latents = posterior.sample(generator=generator) * VAE_SCALING_FACTOR
    source_latents = vae.encode(_pixels(model, source, "source image")).latent_dist.mode()
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype, device=generator.device)
    latents = scheduler.add_noise(latents, noise.to(latents.device), scheduler.timesteps[:1])
    tokens = tokens.to(model.device, model.dtype)
    if guidance is None:
        branches, image_latents, context = 1, source_latents, tokens
    else:
        uncond = guidance.uncond_tokens.to(model.device, model.dtype)
        image_latents = torch.cat([source_latents, source_latents, torch.zeros_like(source_latents)])
        branches, context = 3, torch.cat([tokens, uncond, uncond])
    for t in scheduler.timesteps:
        model_in = torch.cat([torch.cat([latents] * branches), image_latents], dim=1)
        out = unet(model_in, t, encoder_hidden_states=context).sample
        if guidance is not None:
            out = image_guidance_combine(*out.chunk(3), guidance.text_scale, guidance.image_scale)
        latents = scheduler.step(out, t, latents).prev_sample
    decoded = vae.decode(latents / VAE_SCALING_FACTOR).sample
    return (decoded / 2 + 0.5).clamp(0, 1).float().permute(0, 2, 3, 1).cpu().contiguous()
