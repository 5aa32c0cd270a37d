"""The denoising loop over a pipeline's own components, with any number of
conditioning branches evaluated in one batched UNet call per step.

Branch ``i`` is a text embedding; all branches see the same latents, so the
batch is ``[branch 0 × B, branch 1 × B, ...]`` and the outputs are split back
per branch for the ``guidance`` callable (``emotion_core.guidance``). With visual prompt
patches installed (``visual_prompt.diffusers_unet.patched``), the options they
read are set before every call: ``cond_or_uncond`` (the condition index of each
branch chunk, by default ``i`` for branch ``i`` — 0 positive, 1 negative, as in
ComfyUI — so each branch attends to the image tokens of its role) and
``sigmas`` (the step's noise level, for start/end gating).
"""

from __future__ import annotations

import inspect
import logging
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import InvalidInputError
from ..guidance import Guidance, StepInfo
from ..visual_prompt.diffusers_unet import patched
from .latents import check_size, decode_latents, encode_image

log = logging.getLogger(__name__)

StepCallback = Callable[[StepInfo, torch.Tensor], None]


@dataclass(frozen=True)
class SampleResult:
    images: torch.Tensor  # IMAGE [B,H,W,3] float32 in 0..1, CPU
    latents: torch.Tensor  # final latents [B,C,h,w] (scaled, UNet space), CPU float32
    seeds: tuple[int, ...]  # seed of each image: seed, seed+1, ...
    steps_run: int  # UNet calls made (one per executed step)


def _check_branches(unet, branch_embeds: Sequence[torch.Tensor], batch: int) -> None:
    if not branch_embeds:
        raise InvalidInputError("sample needs at least one conditioning branch")
    width = unet.config.cross_attention_dim
    lengths = set()
    for i, embeds in enumerate(branch_embeds):
        if embeds.ndim != 3 or embeds.shape[0] not in (1, batch) or embeds.shape[2] != width:
            raise InvalidInputError(f"branch {i} embeddings have shape {tuple(embeds.shape)}, expected "
                                    f"[1 or {batch}, tokens, {width}]")
        lengths.add(embeds.shape[1])
    if len(lengths) > 1:
        raise InvalidInputError(f"branches have different token counts {sorted(lengths)}; encode them alike")


def _sigma(scheduler, timestep: torch.Tensor) -> float:
    """ComfyUI's sigma for a discrete timestep: sqrt((1 - alpha_bar) / alpha_bar)."""
    alphas = scheduler.alphas_cumprod
    alpha = float(alphas[min(max(int(round(float(timestep))), 0), len(alphas) - 1)])
    return ((1.0 - alpha) / alpha) ** 0.5


def _initial_noise(generators: Sequence[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators])


def sample(pipe, branch_embeds: Sequence[torch.Tensor], guidance: Guidance, *, seed: int, steps: int, width: int,
           height: int, batch: int = 1, init_image: torch.Tensor | None = None, denoise: float = 1.0,
           patches: Sequence | None = None, condition_indices: Sequence[int] | None = None,
           callback: StepCallback | None = None, progress: bool = True,
           patch_options: Mapping | None = None, init_latents: torch.Tensor | None = None) -> SampleResult:
    """Denoise ``batch`` images; see the package docstring for the arguments.

    Image ``k`` starts from the noise of ``seed + k``, so any image of a batch can be
    re-made alone. With ``init_image`` (IMAGE, 1 or ``batch`` images of the output size),
    the image is VAE-encoded once, noised to the timestep ``denoise`` selects and only
    the last ``int(steps * denoise)`` steps run (diffusers' img2img rule; 0 steps returns
    the VAE round trip). ``init_latents`` (from ``encode_image``) replaces ``init_image`` for
    callers that re-use one encoding across calls. ``callback(step, latents)`` runs after every step; raise from it
    to stop. ``patch_options`` are extra per-call options for the patches, e.g.
    ``{GUIDER_ROLES_OPTION: {2: NEGATIVE_VISUAL}}`` to declare a third branch's token role."""
    unet = pipe.unet
    check_size(pipe, width, height)
    if steps < 1 or batch < 1:
        raise InvalidInputError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if not 0.0 <= denoise <= 1.0:
        raise InvalidInputError(f"denoise must be between 0 and 1, got {denoise}")
    if init_image is not None and init_latents is not None:
        raise InvalidInputError("give init_image or init_latents, not both")
    if init_image is None and init_latents is None and denoise != 1.0:
        raise InvalidInputError("denoise < 1 needs an init image (it sets how much of the image is re-noised)")
    _check_branches(unet, branch_embeds, batch)
    branches = len(branch_embeds)
    indices = list(range(branches)) if condition_indices is None else [int(i) for i in condition_indices]
    if len(indices) != branches:
        raise InvalidInputError(f"{len(indices)} condition indices for {branches} branches")

    device, dtype = unet.device, unet.dtype
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)  # own state: calls never interfere
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    seeds = tuple(seed + k for k in range(batch))
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    shape = (unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = _initial_noise(generators, shape).to(device, dtype)
    if init_image is None and init_latents is None:
        latents = noise * scheduler.init_noise_sigma
    else:
        if init_image is not None:
            if init_image.shape[0] not in (1, batch) or tuple(init_image.shape[1:3]) != (height, width):
                raise InvalidInputError(f"init image has shape {tuple(init_image.shape)}, expected [1 or {batch}, "
                                        f"{height}, {width}, C]")
            init_latents = encode_image(pipe, init_image)
        if init_latents.ndim != 4 or init_latents.shape[0] not in (1, batch) or tuple(init_latents.shape[1:]) != shape:
            raise InvalidInputError(f"init latents have shape {tuple(init_latents.shape)}, expected [1 or {batch}, "
                                    f"{', '.join(map(str, shape))}]")
        init = init_latents.to(device, dtype).expand(batch, -1, -1, -1)
        start = (steps - min(int(steps * denoise), steps)) * scheduler.order
        timesteps = timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(batch)) if len(timesteps) else init

    context = torch.cat([e.to(device, dtype).expand(batch, -1, -1) for e in branch_embeds])
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    with torch.no_grad(), (patched(unet, patches) if patches else nullcontext({})) as options:
        options.update(patch_options or {})
        bar = tqdm(timesteps, desc="sampling", file=sys.stderr, disable=not progress, leave=False)
        for i, t in enumerate(bar):
            step = StepInfo(i, len(timesteps), float(t), _sigma(scheduler, t))
            options["cond_or_uncond"] = indices  # one chunk of ``batch`` rows per branch
            options["sigmas"] = torch.full((branches * batch,), step.sigma)
            model_in = scheduler.scale_model_input(torch.cat([latents] * branches), t)
            out = unet(model_in, t, encoder_hidden_states=context, return_dict=False)[0]
            guided = guidance(list(out.chunk(branches)), step)
            latents = scheduler.step(guided, t, latents, **step_kwargs, return_dict=False)[0]
            if callback is not None:
                callback(step, latents)
    images = decode_latents(pipe, latents)
    return SampleResult(images, latents.float().cpu(), seeds, len(timesteps))
