"""Visual prompts (MC-Diffusion) in the diffusers pipeline: image files -> CLIP vision
features -> adapter tokens -> attn2 patches for ``sample(..., patches=...)``.

Why not diffusers' own IP-Adapter support (``load_ip_adapter`` +
``IPAdapterAttnProcessor``): the project already has one implementation of the
decoupled attention (``visual_prompt.attention``), used by the ComfyUI nodes,
the benchmarks and — through ``visual_prompt.diffusers_unet`` — by diffusers
UNets. Reusing it keeps the CLI numerically identical to the Visual Prompt
Injector and gives the pipeline what diffusers' processors do not: image
tokens chosen per batch chunk from a condition index (a third branch with a
*negative visual prompt* for DPO guidance is just another role), the weight
schedules across layers, sigma-gated start/end, several prompts with their
own weights stacked, and image keys/values projected once instead of every step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..critics.clip_backbone import OPENAI_MEAN, OPENAI_STD, ClipPreprocess
from ..errors import InvalidInputError, ModelFormatError
from ..images import resize_shorter_center_crop, to_nchw
from ..visual_prompt import (DEFAULT_CONDITION_ROLES, ProjectedPrompt, VisualPrompt, VisualPromptAdapter,
                             VisualPromptInjection, build_visual_prompt, check_sites, layer_weights, make_patches)
from ..visual_prompt.diffusers_unet import diffusers_attn2_sites
from ..visual_prompt.schedule import check_weight

log = logging.getLogger(__name__)

FEATURES = ("image_embeds", "penultimate_hidden_states")


class ClipVisionEncoder:
    """A transformers ``CLIPVisionModelWithProjection`` with CLIP's preprocessing; gives the
    outputs ComfyUI's CLIP_VISION names: ``image_embeds`` (projected, base adapters) and
    ``penultimate_hidden_states`` (plus adapters)."""

    def __init__(self, model, preprocess: ClipPreprocess, name: str):
        self.model, self.preprocess, self.name = model.eval().requires_grad_(False), preprocess, name

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @torch.no_grad()
    def features(self, images: torch.Tensor, feature: str) -> torch.Tensor:
        """IMAGE ``[N,H,W,3]`` -> ``[N, D]`` (image_embeds) or ``[N, seq, D]`` (penultimate)."""
        if feature not in FEATURES:
            raise InvalidInputError(f"unknown CLIP vision feature {feature!r}; one of {FEATURES}")
        pixels = self.preprocess(to_nchw(images)).to(self.model.device, self.model.dtype)
        out = self.model(pixel_values=pixels, output_hidden_states=feature != "image_embeds")
        result = out.image_embeds if feature == "image_embeds" else out.hidden_states[-2]
        return result.float()


def load_image_encoder(folder: str | Path, device: str | torch.device = "cpu",
                       dtype: torch.dtype = torch.float32) -> ClipVisionEncoder:
    """A diffusers IP-Adapter ``image_encoder`` folder (transformers ``save_pretrained`` layout), read locally."""
    from transformers import CLIPVisionModelWithProjection

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelFormatError(f"{folder}: not a CLIP vision model folder (no config.json); pass the folder of a "
                               "CLIPVisionModelWithProjection, e.g. IP-Adapter's models/image_encoder")
    from .loading import quiet_loading

    try:
        with quiet_loading():
            model = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{folder}: cannot load a CLIPVisionModelWithProjection ({exc})") from exc
    preprocess = ClipPreprocess(model.config.image_size, OPENAI_MEAN, OPENAI_STD)
    return ClipVisionEncoder(model.to(device), preprocess, folder.name)


def _square(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Images of any sizes -> one IMAGE batch at the encoder's input size (CLIP's resize + crop)."""
    squared = [resize_shorter_center_crop(to_nchw(image, "visual prompt"), size, mode="bicubic") for image in images]
    return torch.cat(squared).permute(0, 2, 3, 1).contiguous()


def visual_prompts_from_images(adapter: VisualPromptAdapter, encoder: ClipVisionEncoder,
                               images: Sequence[tuple[torch.Tensor, float]],
                               combine: str = "concat") -> list[tuple[VisualPrompt, float]]:
    """``(IMAGE, weight)`` pairs -> one visual prompt per distinct weight (images sharing a
    weight share one prompt, their tokens concatenated or averaged as in the injector node),
    in first-appearance order. The negative role gets the adapter's "no image" tokens."""
    if not images:
        raise InvalidInputError("no visual prompt images given")
    groups: dict[float, list[torch.Tensor]] = {}
    for image, weight in images:
        groups.setdefault(check_weight(weight, "visual prompt weight"), []).append(image)
    feature = adapter.layout.feature_name

    def encode(batch: torch.Tensor) -> torch.Tensor:
        return encoder.features(batch, feature)

    return [(build_visual_prompt(adapter, encode, _square(group, encoder.image_size), combine=combine), weight)
            for weight, group in groups.items()]


def visual_prompt_patches(unet, adapter: VisualPromptAdapter, prompts: Sequence[tuple[VisualPrompt, float]],
                          schedule: str = "uniform", sigma_range: tuple[float, float] | None = None,
                          condition_roles: Mapping[int, str] = DEFAULT_CONDITION_ROLES) -> list:
    """attn2 patches (adapter order) for ``sample(..., patches=...)``: one injection per
    ``(prompt, weight)``, stacked like chained Visual Prompt Injector nodes. ``condition_roles``
    maps a branch's condition index to the token role it attends to (add roles, e.g. a
    negative visual prompt for a third branch, through the VisualPrompt's tokens)."""
    sites = diffusers_attn2_sites(unet)
    check_sites(adapter, sites)
    existing: dict = {}
    for prompt, weight in prompts:
        projected = ProjectedPrompt.from_prompt(adapter, prompt)
        injection = VisualPromptInjection(projected, layer_weights(schedule, sites, weight), sigma_range,
                                          condition_roles)
        injection.to(unet.device).to(unet.dtype)
        existing = {site.key: patch for site, patch in make_patches(injection, sites, existing)}
    if not existing:
        raise InvalidInputError("no visual prompts to inject")
    return [existing[site.key] for site in sites]
