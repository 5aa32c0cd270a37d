"""Negative Visual DPO sampling: three-branch guidance (text + visual prompt, the same text +
another emotion's visual prompt, unconditional) in one batched model call per step.

The nodes inject both visual prompts themselves, on a clone of the model, through the
Visual Prompt Injector's code: the positive visual prompt's tokens for condition 0, its
negative ("no image" or negative image) tokens for the unconditional condition 1, and
the negative visual prompt's tokens for condition 2, which the guider declares as the
negative visual branch. A model that already went through Visual Prompt Injectors keeps
them (they stack); they see condition 2 as the positive branch, so the visual guidance
term isolates the two emotions' visual prompts.
"""

from __future__ import annotations

import logging
import math

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import node_helpers
import torch
from comfy_api.latest import io

from emotion_core.encoder_families import check_conditioning_for_model, model_config_name
from emotion_core.errors import InvalidInputError
from emotion_core.guidance import (
    SCHEDULES,
    VISUAL_SCALE_RANGE,
    check_visual_scale,
    negative_visual_roles,
    step_progress,
    three_branch_guidance,
    visual_scale_at,
    with_negative_visual,
)
from emotion_core.visual_prompt import NEGATIVE_VISUAL, check_sites, comfy_unet_attn2_sites, layer_weights
from emotion_core.visual_prompt.flux_injection import (
    check_flux_adapter,
    flux_layer_weights,
    flux_model_shape,
    is_flux_model,
    model_family_name,
)
from emotion_core.visual_prompt.flux_layout import FLUX
from emotion_core.visual_prompt.schedule import WEIGHT_RANGE

from .common import CATEGORY
from .input_checks import CheckedNode
from .types import VisualPromptAdapterType, VisualPromptType
from .visual_prompt import inject, inject_flux

log = logging.getLogger(__name__)


class NegativeVisualGuider(comfy.samplers.CFGGuider):
    """CFGGuider whose noise prediction is ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv) over one
    ``calc_cond_batch`` call (conditions in ``emotion_core.guidance.roles`` order); ComfyUI's
    pre/post-cfg hooks run as in ``cfg_function``."""

    def set_conds(self, positive, negative, negative_visual=None):
        # the negative visual branch has the positive text (and its prompt_type), or its own conditioning:
        # the same text with another emotion's visual tokens in it (Flux Redux: StyleModelApply)
        negative_visual = node_helpers.conditioning_set_values(negative_visual or positive, {"prompt_type": "positive"})
        self.inner_set_conds({"positive": positive, "negative": negative, "negative_visual": negative_visual})

    def set_cfg(self, cfg, visual_scale=0.0, visual_schedule="constant"):
        self.cfg = cfg
        self.visual_scale = visual_scale
        self.visual_schedule = visual_schedule

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - ComfyUI's signature
        comfy.model_management.throw_exception_if_processing_interrupted()
        transformer_options = model_options.get("transformer_options", {})
        progress = step_progress(float(timestep.max()), transformer_options.get("sample_sigmas"))
        visual_scale = visual_scale_at(self.visual_schedule, self.visual_scale, progress)
        positive = self.conds.get("positive")
        uncond = self.conds.get("negative")
        negative_visual = self.conds.get("negative_visual")
        if not model_options.get("disable_cfg1_optimization", False):
            # a branch whose weight is zero is not evaluated (ComfyUI's cfg 1 optimisation)
            if visual_scale == 0.0:
                negative_visual = None
            if math.isclose(self.cfg, 1.0):
                uncond = None
        conds = [positive, uncond, negative_visual]
        model_options = {**model_options, "transformer_options": {**transformer_options, **negative_visual_roles()}}
        out = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        for fn in model_options.get("sampler_pre_cfg_function", []):
            out = fn({"conds": conds, "conds_out": out, "cond_scale": self.cfg, "timestep": timestep, "input": x,
                      "sigma": timestep, "model": self.inner_model, "model_options": model_options})
        cond_pred, uncond_pred, negative_visual_pred = out
        result = three_branch_guidance(cond_pred, negative_visual_pred if negative_visual is not None else None,
                                       uncond_pred if uncond is not None else None, self.cfg, visual_scale)
        for fn in model_options.get("sampler_post_cfg_function", []):
            result = fn({"denoised": result, "cond": positive, "uncond": uncond, "cond_scale": self.cfg,
                         "model": self.inner_model, "uncond_denoised": uncond_pred, "cond_denoised": cond_pred,
                         "sigma": timestep, "model_options": model_options, "input": x,
                         # beyond cfg_function's arguments, for hooks that know this guider
                         "negative_visual_cond": negative_visual, "negative_visual_denoised": negative_visual_pred,
                         "visual_scale": visual_scale})
        return result


def _check_batches(latent: torch.Tensor | None, **conditionings) -> None:
    """Conditioning batches must be 1 or the latent batch (ComfyUI would silently repeat or cut them)."""
    for name, conditioning in conditionings.items():
        if not conditioning:
            raise InvalidInputError(f"{name} conditioning is empty; connect a CLIP Text Encode output")
        if latent is None:
            continue
        for tensor, _ in conditioning:
            if tensor.shape[0] not in (1, latent.shape[0]):
                raise InvalidInputError(
                    f"{name} conditioning has batch {tensor.shape[0]} but the latent has {latent.shape[0]} images; "
                    "use batch 1 (shared) or one conditioning per image")


def _check_families(model, **conditionings) -> None:
    """Each conditioning must come from the model's family's text encoders (named in the error)."""
    config_name = model_config_name(model)
    for name, conditioning in conditionings.items():
        if conditioning is not None:
            check_conditioning_for_model(config_name, conditioning, name)


def _inject_visual_prompts(patched, adapter, positive_visual_prompt, negative_visual_prompt, visual_weight: float):
    """Inject the visual prompt (with the negative visual prompt's tokens as its negative visual role):
    attn2 patches on a UNet (SD1.5, SDXL), DiT block patches on Flux (XLabs / InstantX adapters)."""
    diffusion_model = patched.get_model_object("diffusion_model")
    flux = is_flux_model(diffusion_model)
    if flux:
        shape = flux_model_shape(diffusion_model)
        keys = check_flux_adapter(adapter.layout, shape)
    else:
        if adapter.layout.family == FLUX:
            raise InvalidInputError(
                f"this adapter is for Flux ({adapter.layout.variant} format, DiT blocks) but the model is "
                f"{model_family_name(diffusion_model)}; load an SD1.5/SDXL IP-Adapter for this model")
        sites = comfy_unet_attn2_sites(diffusion_model)
        check_sites(adapter, sites)
    positive_visual_prompt.check_adapter(adapter.layout)
    prompt = positive_visual_prompt
    if negative_visual_prompt is not None:
        negative_visual_prompt.check_adapter(adapter.layout)
        prompt = with_negative_visual(positive_visual_prompt, negative_visual_prompt)
    if flux:
        inject_flux(patched, adapter, keys, shape, prompt, flux_layer_weights("uniform", keys, visual_weight))
    else:
        inject(patched, adapter, sites, prompt, layer_weights("uniform", sites, visual_weight))


def make_guider(model, adapter, positive, negative, positive_visual_prompt, negative_visual_prompt, cfg: float,
                visual_scale: float, visual_schedule: str, visual_weight: float, latent: torch.Tensor | None = None,
                negative_visual_conditioning=None):
    """The injected clone of ``model`` and its three-branch guider. Without a negative visual
    prompt the positive prompt's own ``negative_visual`` tokens are used (a bank prompt with a
    negative emotion); a ``negative_visual_conditioning`` (the same text with another emotion's
    visual tokens in the conditioning, as Flux Redux puts them) is the negative visual branch
    itself. Without any of them the visual term is off: plain CFG (two branches) with the
    positive visual prompt, and a warning. At cfg 1 (Flux dev, guidance-distilled) the
    unconditional branch is skipped: ε_p + s_v(ε_p − ε_nv), two rows in one model call."""
    check_visual_scale(visual_scale)
    if not math.isfinite(cfg) or cfg < 0:
        raise InvalidInputError(f"cfg must be a finite number >= 0, got {cfg}")
    if visual_schedule not in SCHEDULES:
        raise InvalidInputError(f"visual_schedule must be one of {list(SCHEDULES)}, got {visual_schedule!r}")
    low, high = WEIGHT_RANGE
    if not low <= visual_weight <= high:
        raise InvalidInputError(f"visual_weight must be between {low} and {high}, got {visual_weight}")
    if positive_visual_prompt is None and negative_visual_conditioning is None:
        raise InvalidInputError("connect positive_visual_prompt (e.g. from Emotion Visual Prompt Bank), or "
                                "negative_visual_conditioning when the visual prompts are in the conditioning "
                                "(Flux Redux)")
    if positive_visual_prompt is not None and adapter is None:
        raise InvalidInputError("positive_visual_prompt needs the adapter it was made with; connect adapter")
    _check_batches(latent, positive=positive, negative=negative)
    if negative_visual_conditioning is not None:
        _check_batches(latent, negative_visual=negative_visual_conditioning)
    _check_families(model, positive=positive, negative=negative, negative_visual=negative_visual_conditioning)
    # a bank prompt made with a negative_emotion carries that emotion's tokens as its negative visual role
    carries_negative_visual = positive_visual_prompt is not None and NEGATIVE_VISUAL in positive_visual_prompt.tokens
    if negative_visual_prompt is None and not carries_negative_visual and negative_visual_conditioning is None:
        if visual_scale != 0.0:
            log.warning("Negative Visual DPO: no negative_visual_prompt connected; visual guidance %.2f is ignored "
                        "and sampling falls back to plain CFG with the positive visual prompt", visual_scale)
        visual_scale = 0.0
    patched = model.clone()
    if positive_visual_prompt is not None:
        _inject_visual_prompts(patched, adapter, positive_visual_prompt, negative_visual_prompt, visual_weight)
    guider = NegativeVisualGuider(patched)
    guider.set_conds(positive, negative, negative_visual_conditioning)
    guider.set_cfg(cfg, visual_scale, visual_schedule)
    return guider


def _inputs(with_sampling: bool) -> list:
    low, high = VISUAL_SCALE_RANGE
    weight_low, weight_high = WEIGHT_RANGE
    inputs = [
        io.Model.Input("model", tooltip="SD1.5, SDXL, Flux or SD3.5 model (cloned; weights are shared). Visual "
                       "Prompt Injectors already applied to it stay active. Flux dev: cfg 1 (its guidance is the "
                       "Flux Guidance value in the conditioning)."),
        VisualPromptAdapterType.Input("adapter", optional=True,
                                      tooltip="The adapter both visual prompts were made with (not needed when the "
                                      "visual prompts are in the conditionings, e.g. Flux Redux)."),
        io.Conditioning.Input("positive", tooltip="Text prompt; both visual branches use it."),
        io.Conditioning.Input("negative", tooltip="Negative / empty text for the unconditional branch."),
        VisualPromptType.Input("positive_visual_prompt", optional=True,
                               tooltip="Visual prompt of the target emotion (e.g. Emotion Visual Prompt Bank). Its "
                               "negative tokens go to the unconditional branch."),
    ]
    if with_sampling:
        inputs += [
            io.Latent.Input("latent_image", tooltip="Latent to denoise (Empty Latent Image for text-to-image)."),
            io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                         tooltip="Noise seed."),
            io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps."),
        ]
    inputs += [
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Text guidance scale s (classifier-free guidance)."),
        io.Float.Input("visual_scale", default=2.0, min=low, max=high, step=0.05,
                       tooltip="Visual guidance scale s_v: how hard to move away from the negative visual prompt "
                       "(another emotion under the same text). 0 = plain CFG."),
        io.Combo.Input("visual_schedule", options=list(SCHEDULES), default="constant",
                       tooltip="s_v over the steps: constant; linear_decay / cosine_decay (strong early, off at the "
                       "end); linear_ramp (off at the start, full at the end)."),
        io.Float.Input("visual_weight", default=0.8, min=weight_low, max=weight_high, step=0.05,
                       tooltip="Strength of the visual prompt tokens in cross-attention (as in the Visual Prompt "
                       "Injector)."),
    ]
    if with_sampling:
        inputs += [
            io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="Sampling algorithm."),
            io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Noise schedule."),
            io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                           tooltip="How much of the latent is re-noised (1 = text-to-image, lower = keep more of it)."),
        ]
    inputs.append(VisualPromptType.Input(
        "negative_visual_prompt", optional=True,
        tooltip="Visual prompt of another emotion to move away from (e.g. the bank with the opposite emotion). "
        "Without it: the negative visual tokens the positive visual prompt carries (Emotion Visual Prompt Bank with "
        "a negative_emotion), else plain CFG with the positive visual prompt, and a warning."))
    inputs.append(io.Conditioning.Input(
        "negative_visual_conditioning", optional=True,
        tooltip="The negative visual branch as a conditioning: the same text with another emotion's visual tokens "
        "in it (Flux Redux: CLIP Text Encode -> Apply Style Model with the other emotion's image). Use with a "
        "positive conditioning that holds the target emotion's tokens; no adapter needed."))
    return inputs


DESCRIPTION = (
    "Emotion-Director's negative visual prompt guidance: ε = ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv), where ε_p sees "
    "the text and the target emotion's visual prompt, ε_nv the same text and another emotion's visual prompt, ε_u the "
    "negative text. All three branches run in one batched model call per step."
)


class NegativeVisualDPOSampler(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NegativeVisualDPOSampler",
            display_name="Negative Visual DPO Sampler",
            category=CATEGORY,
            description=DESCRIPTION,
            inputs=_inputs(with_sampling=True),
            outputs=[io.Latent.Output("samples", display_name="LATENT", tooltip="The denoised latent.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed: int, steps: int, cfg: float, visual_scale: float,
                visual_schedule: str, visual_weight: float, sampler_name: str, scheduler: str, denoise: float,
                adapter=None, positive_visual_prompt=None, negative_visual_prompt=None,
                negative_visual_conditioning=None) -> io.NodeOutput:
        samples = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        guider = make_guider(model, adapter, positive, negative, positive_visual_prompt, negative_visual_prompt, cfg,
                             visual_scale, visual_schedule, visual_weight, samples, negative_visual_conditioning)
        noise = comfy.sample.prepare_noise(samples, seed, latent_image.get("batch_index"))
        sigmas = comfy.samplers.KSampler(guider.model_patcher, steps=steps, device=model.load_device,
                                         sampler=sampler_name, scheduler=scheduler, denoise=denoise).sigmas
        callback = latent_preview.prepare_callback(guider.model_patcher, steps)
        out = guider.sample(noise, samples, comfy.samplers.sampler_object(sampler_name), sigmas,
                            denoise_mask=latent_image.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        result = latent_image.copy()
        result["samples"] = out.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(result)


class NegativeVisualDPOGuider(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NegativeVisualDPOGuider",
            display_name="Negative Visual DPO Guider",
            category=CATEGORY,
            description=DESCRIPTION + " This node gives the guider alone, for SamplerCustomAdvanced.",
            inputs=_inputs(with_sampling=False),
            outputs=[io.Guider.Output("guider", display_name="GUIDER",
                                      tooltip="Connect to SamplerCustomAdvanced's guider input.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg: float, visual_scale: float, visual_schedule: str,
                visual_weight: float, adapter=None, positive_visual_prompt=None, negative_visual_prompt=None,
                negative_visual_conditioning=None) -> io.NodeOutput:
        return io.NodeOutput(make_guider(model, adapter, positive, negative, positive_visual_prompt,
                                         negative_visual_prompt, cfg, visual_scale, visual_schedule, visual_weight,
                                         negative_visual_conditioning=negative_visual_conditioning))


NODES = [NegativeVisualDPOSampler, NegativeVisualDPOGuider]
