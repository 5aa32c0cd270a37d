"""Visual prompts (MC-Diffusion): load an IP-Adapter-layout adapter, and inject image
tokens into a model's cross-attention next to the text."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch
from emotion_core.visual_prompt import (
    ProjectedPrompt,
    VisualPromptInjection,
    build_visual_prompt,
    check_sites,
    comfy_unet_attn2_sites,
    layer_weights,
    load_adapter,
    make_patches,
)
from emotion_core.visual_prompt.flux_injection import (
    check_flux_adapter,
    flux_layer_weights,
    flux_model_shape,
    is_flux_model,
    make_flux_patches,
    model_family_name,
    project_flux_prompt,
)
from emotion_core.visual_prompt.flux_layout import FLUX
from emotion_core.visual_prompt.prompt import COMBINE_MODES
from emotion_core.visual_prompt.schedule import WEIGHT_RANGE

from .common import CATEGORY, cached_load
from .input_checks import CheckedNode
from .model_folders import model_combo, model_path
from .types import VisualPromptAdapterType, VisualPromptType

# recently used adapters (SDXL ones are ~700 MB)
cached_adapter = cached_load(load_adapter, maxsize=2)


class VisualPromptAdapterLoader(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VisualPromptAdapterLoader",
            display_name="Load Visual Prompt Adapter",
            category=CATEGORY,
            description=(
                "Loads a visual prompt adapter in the public IP-Adapter layout (SD1.5 or SDXL, base with 4 image "
                "tokens or plus with 16). It turns CLIP vision features into image tokens that the Visual Prompt "
                "Injector adds to the model's cross-attention."
            ),
            inputs=[
                model_combo("adapter_name", "ipadapter",
                            tooltip="Adapter file in models/ipadapter/ (.safetensors, or .bin read weights-only). "
                            "The family (SD1.5/SDXL) and variant (base/plus) are read from the weights."),
            ],
            outputs=[VisualPromptAdapterType.Output("adapter", display_name="adapter",
                                                    tooltip="The loaded adapter (kept on the CPU).")],
        )

    @classmethod
    def execute(cls, adapter_name: str) -> io.NodeOutput:
        return io.NodeOutput(cached_adapter(model_path("ipadapter", adapter_name)))


def _clip_features(clip_vision, name: str):
    """IMAGE -> the CLIP vision output the adapter reads (``image_embeds`` or penultimate hidden states)."""
    return lambda images: clip_vision.encode_image(images)[name]


def _sigma_range(model, start_percent: float, end_percent: float):
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise InvalidInputError(
            f"start_percent ({start_percent}) must be <= end_percent ({end_percent}), both between 0 and 1"
        )
    if start_percent == 0.0 and end_percent == 1.0:
        return None
    sampling = model.get_model_object("model_sampling")
    return sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent)


class VisualPromptInjector(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        low, high = WEIGHT_RANGE
        return io.Schema(
            node_id="VisualPromptInjector",
            display_name="Visual Prompt Injector",
            category=CATEGORY,
            description=(
                "MC-Diffusion visual prompts: the model attends to image tokens next to the text in every "
                "cross-attention block, so the images' mood (light, palette, texture, composition) guides the result "
                "beyond what words carry. Give images + CLIP vision, or a ready visual prompt (e.g. from the Emotion "
                "Visual Prompt Bank). Several injectors can be chained."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SD1.5 or SDXL model to patch (it is cloned; weights are shared)."),
                VisualPromptAdapterType.Input("adapter", tooltip="From Load Visual Prompt Adapter; must match the "
                                              "model family (SD1.5 adapter for SD1.5 models, SDXL for SDXL)."),
                io.Float.Input("weight", default=0.8, min=low, max=high, step=0.05,
                               tooltip="Strength of the visual prompt: 0 = off, 1 = as trained, above 1 = the image "
                               "dominates the text."),
                io.String.Input("weight_schedule", default="uniform",
                                tooltip="How the strength spreads over the UNet: 'uniform'; 'style' and "
                                "'composition' as in IPAdapter_plus (SDXL: style = the first up block's second "
                                "attention, composition = the last down block's second attention; SD1.5: "
                                "IPAdapter_plus's tables, see the help page); 'down,middle,up' multipliers such as "
                                "'0.2,0.5,1'; or one multiplier per cross-attention layer."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress at which the visual prompt starts acting (0 = first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling progress at which it stops (1 = last step). Ending early keeps the "
                               "mood but lets the text decide the details."),
                io.Combo.Input("image_combine", options=list(COMBINE_MODES), default="concat",
                               tooltip="Several images: 'concat' lets attention draw on every image; 'average' "
                               "blends their features into one visual prompt."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="The CLIP vision model the adapter was trained with (ViT-H/14 for the "
                                    "SD1.5 and *_vit-h SDXL adapters). Needed with image."),
                io.Image.Input("image", optional=True,
                               tooltip="Visual prompt image(s); each image in the batch is a visual prompt."),
                io.Image.Input("negative_image", optional=True,
                               tooltip="Optional image(s) the negative branch attends to, pushing the result away "
                               "from them (e.g. the opposite emotion). Without it: the adapter's neutral tokens."),
                VisualPromptType.Input("visual_prompt", optional=True,
                                       tooltip="Ready image tokens (e.g. from a prompt bank) instead of image + "
                                       "clip_vision."),
            ],
            outputs=[io.Model.Output("patched_model", display_name="model",
                                     tooltip="The model with the visual prompt in its cross-attention.")],
        )

    @classmethod
    def execute(cls, model, adapter, weight: float, weight_schedule: str, start_percent: float, end_percent: float,
                image_combine: str = "concat", clip_vision=None, image=None, negative_image=None,
                visual_prompt=None) -> io.NodeOutput:
        if visual_prompt is not None and (image is not None or negative_image is not None):
            raise InvalidInputError("connect either visual_prompt or image/negative_image, not both")
        if visual_prompt is None and (image is None or clip_vision is None):
            raise InvalidInputError("connect image and clip_vision, or a visual_prompt")
        # cheap checks first: CLIP vision encoding is the slow part
        sigma_range = _sigma_range(model, start_percent, end_percent)
        patched = model.clone()
        diffusion_model = patched.get_model_object("diffusion_model")
        if is_flux_model(diffusion_model):
            shape = flux_model_shape(diffusion_model)
            keys = check_flux_adapter(adapter.layout, shape)
            weights = flux_layer_weights(weight_schedule, keys, weight)
        else:
            if adapter.layout.family == FLUX:
                raise InvalidInputError(
                    f"this adapter is for Flux ({adapter.layout.variant} format, DiT blocks) but the model is "
                    f"{model_family_name(diffusion_model)}; load an SD1.5/SDXL IP-Adapter for this model"
                )
            sites = comfy_unet_attn2_sites(diffusion_model)
            check_sites(adapter, sites)
            weights = layer_weights(weight_schedule, sites, weight)
        if visual_prompt is None:
            for name, value in (("image", image), ("negative_image", negative_image)):
                # before CLIP vision sees NaN or huge images (build_visual_prompt reports an empty batch)
                if value is not None and not (isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == 0):
                    as_rgb_batch(value, name)
            encode = _clip_features(clip_vision, adapter.layout.feature_name)
            visual_prompt = build_visual_prompt(adapter, encode, image, negative_image, image_combine)
        if is_flux_model(diffusion_model):
            inject_flux(patched, adapter, keys, shape, visual_prompt, weights, sigma_range)
        else:
            inject(patched, adapter, sites, visual_prompt, weights, sigma_range)
        return io.NodeOutput(patched)


def inject(patched, adapter, sites, visual_prompt, weights, sigma_range=None) -> None:
    """Add attn2 patches for ``visual_prompt`` to a cloned model, stacking on its existing ones."""
    from comfy.ldm.modules.attention import optimized_attention
    from comfy.model_patcher import ModelPatcher

    projected = ProjectedPrompt.from_prompt(adapter, visual_prompt)
    # A ModelPatcher around the projected keys/values: ComfyUI loads it with the UNet
    # (through the patches' models()) and frees it with it.
    kv_patcher = ModelPatcher(projected, load_device=patched.load_device, offload_device=patched.offload_device)
    injection = VisualPromptInjection(projected, weights, sigma_range, managed_models=[kv_patcher])
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})
    for site, patch in make_patches(injection, sites, existing, optimized_attention):
        patched.set_model_attn2_replace(patch, site.block, site.number, site.index)


def inject_flux(patched, adapter, keys, shape, visual_prompt, weights, sigma_range=None) -> None:
    """Add DiT block patches for a Flux IP-Adapter to a cloned Flux model, stacking on existing ones."""
    from comfy.model_patcher import ModelPatcher

    projected = project_flux_prompt(adapter, visual_prompt, shape)
    kv_patcher = ModelPatcher(projected, load_device=patched.load_device, offload_device=patched.offload_device)
    injection = VisualPromptInjection(projected, weights, sigma_range, managed_models=[kv_patcher])
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("dit", {})
    diffusion_model = patched.get_model_object("diffusion_model")
    for key, patch in make_flux_patches(injection, diffusion_model, keys, adapter.layout.variant, existing):
        patched.set_model_patch_replace(patch, "dit", key[0], key[1])


NODES = [VisualPromptAdapterLoader, VisualPromptInjector]
