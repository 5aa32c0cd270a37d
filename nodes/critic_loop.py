"""Emotion Critic Loop: EmoEditor's Iterative Emotion Inference on ComfyUI sampling.

The loop logic (judging, hard cap, direction re-estimation, final pick) is
``emotion_core.critic_loop``; this node supplies the ``generate`` function (one
batched ``comfy.sample.sample`` + VAE decode per pass), the critic and the
conditioning update, and turns the result into ComfyUI outputs.
"""

from __future__ import annotations

import json
import logging
import math

import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io, ui

from emotion_core.conditioning import emotion_delta, replace_tokens, steer_conditioning
from emotion_core.critic_loop import (
    CUSTOM,
    PRESETS,
    RULES,
    Candidates,
    LoopSettings,
    pass_steps,
    run_critic_loop,
)
from emotion_core.critic_loop.settings import (
    DEFAULT_RULE,
    MAX_CANDIDATES_LIMIT,
    MAX_ITERATIONS_LIMIT,
)
from emotion_core.critic_loop.summary import pass_series, summary
from emotion_core.direction import make_direction
from emotion_core.encoder_families import check_conditioning_for_model, model_config_name
from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch, crop_to_multiple, pil_resize

from .common import CATEGORY, emotion_combo, run_critic
from .conditioning import NO_ENCODER, cached_emotion_encoder, clip_text_encoder
from .input_checks import CheckedNode
from .model_folders import model_combo, model_path
from .types import EmotionCriticType, EmotionDirectionType

log = logging.getLogger(__name__)
PREVIEW_FORMAT = "JPEG"


def _initial_latent(vae, source, latent):
    """``(source IMAGE or None, latent dict)``: the source is cropped to the VAE's grid and
    encoded once unless a LATENT is given, whose size must then match it."""
    if source is None and latent is None:
        raise InvalidInputError("connect a source_image (to edit it) or a latent (to generate); neither is connected")
    factor = int(vae.spacial_compression_encode())
    if source is not None:
        source = as_rgb_batch(source, "source_image")
        if source.shape[0] != 1:
            raise InvalidInputError(f"source_image must be one image, got a batch of {source.shape[0]}")
        source = crop_to_multiple(source, factor, "source_image")
    if latent is None:
        return source, {"samples": vae.encode(source)}
    samples = latent["samples"]
    if samples.shape[0] != 1:
        raise InvalidInputError(
            f"latent must hold one image, got a batch of {samples.shape[0]}; candidates_per_iteration sets the batch")
    if source is not None:
        expected = (samples.shape[-2] * factor, samples.shape[-1] * factor)
        if tuple(source.shape[1:3]) != expected:
            raise InvalidInputError(
                f"source_image is {source.shape[1]}x{source.shape[2]} but the latent decodes to {expected[0]}x{expected[1]}; "
                "use the same size (or leave latent unconnected to encode the source)")
    return source, dict(latent)


def _at_preset_size(vae, source, positive, negative, size: int):
    """A preset that edits at ``size`` x ``size`` (EmoEditor: 224, as test.py): the source resized as
    torchvision resizes a PIL image, VAE-encoded once; that encoding is where the first pass starts
    and the InstructPix2Pix concat image of every conditioning entry that has one. Returns
    ``(source, start latent, positive, negative)``."""
    source = as_rgb_batch(source, "source_image")
    if source.shape[0] != 1:
        raise InvalidInputError(f"source_image must be one image, got a batch of {source.shape[0]}")
    source = pil_resize(source, size, size)
    encoded = vae.encode(source)

    def with_concat(conditioning):
        return [[t, {**extras, "concat_latent_image": encoded} if "concat_latent_image" in extras else extras]
                for t, extras in conditioning]

    return source, {"samples": encoded}, with_concat(positive), with_concat(negative)


def _conditioning_update(positive, clip, encoder_name: str, needs_encoder: bool):
    """``direction -> CONDITIONING`` when an encoder or a CLIP is wired in, else None (fixed)."""
    if encoder_name and encoder_name != NO_ENCODER:
        encoder = cached_emotion_encoder(model_path("emotion_encoder", encoder_name))

        def update(direction):
            return replace_tokens(positive, encoder.encode(direction).to(mm.intermediate_device(), torch.float32))

        return update
    if needs_encoder:
        raise InvalidInputError("mode EmoEditor conditions on EmoEditor's emotion encoder: choose one in emotion_encoder")
    if clip is not None:
        encode = clip_text_encoder(clip)
        return lambda direction: steer_conditioning(positive, emotion_delta(encode, direction))
    return None


class EmotionCriticLoop(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionCriticLoop",
            display_name="Emotion Critic Loop",
            category=CATEGORY,
            description=(
                "EmoEditor's Iterative Emotion Inference: edit (or generate), let the emotion critic judge each "
                "candidate and SSIM check the scene is kept, and try again from the best accepted image until one "
                "evokes the target confidently or max_iterations passes (every pass counts) have run. Returns the "
                "best image with the paper's fallbacks, every candidate, and a per-pass JSON report."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to sample with."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning. With clip connected, give the plain "
                                      "text conditioning: the loop steers it toward the target every pass."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning (unused when cfg is 1)."),
                io.Vae.Input("vae", tooltip="VAE: encodes the source once and decodes every candidate for the critic."),
                EmotionCriticType.Input("critic", tooltip="Emotion critic that judges every candidate."),
                emotion_combo("target_emotion", default="awe",
                              tooltip="The emotion to evoke. A connected direction replaces it."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seeds the noise of every candidate and the denoise draws; same seed, same run."),
                io.Int.Input("steps", default=20, min=1, max=10000,
                             tooltip="Steps of the full schedule; a pass at denoise d runs its last round(steps*d) "
                             "(EmoEditor mode: always 30, spread over the truncated schedule)."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale; 1 skips the negative branch."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS),
                               tooltip="Sampler for every pass."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS),
                               tooltip="Noise schedule for every pass."),
                io.Float.Input("denoise_min", default=0.55, min=0.0, max=1.0, step=0.01,
                               tooltip="Lowest denoise a pass may draw (how much of the image is re-made)."),
                io.Float.Input("denoise_max", default=0.85, min=0.0, max=1.0, step=0.01,
                               tooltip="Highest denoise; each pass draws one value in [min, max] (1/1000 grid)."),
                io.Float.Input("ssim_min", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Lower end of the SSIM window: below it the scene is lost."),
                io.Float.Input("ssim_max", default=0.8, min=0.0, max=1.0, step=0.01,
                               tooltip="Upper end of the SSIM window: above it the image barely changed."),
                io.Float.Input("confidence", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Stop once an accepted candidate gives the target at least this probability."),
                io.Combo.Input("rule", options=list(RULES), default=DEFAULT_RULE,
                               tooltip="and: SSIM in the window AND the target is the critic's top emotion (default). "
                               "or: either one (EmoEditor)."),
                io.Int.Input("max_iterations", default=8, min=1, max=MAX_ITERATIONS_LIMIT,
                             tooltip="Hard cap on passes, accepted or not (EmoEditor mode too; it also stops once "
                             "30 images are kept, as test.py)."),
                io.Int.Input("candidates_per_iteration", default=1, min=1, max=MAX_CANDIDATES_LIMIT,
                             tooltip="Candidates sampled together as one batch per pass."),
                io.Combo.Input("mode", options=list(PRESETS), default=CUSTOM,
                               tooltip="custom: the values above, at the source's size. EmoEditor: its test.py "
                               "(OR rule, SSIM (0.5, 0.8), confidence 0.6, up to 30 kept images, denoise 0.70-0.98, "
                               "30 DDIM steps, cfg 1, one candidate, emotion-encoder conditioning, later passes "
                               "steered by the first edit's emotions) at 224x224: the source is resized to 224x224 "
                               "and so are the outputs; nothing accepted returns the source. seed and "
                               "max_iterations (a cap on all passes) still apply."),
                EmotionDirectionType.Input("direction", optional=True,
                                           tooltip="Target as an Emotion Direction (blend and strength); replaces "
                                           "target_emotion. Its source part is re-estimated every pass."),
                io.Image.Input("source_image", optional=True,
                               tooltip="Image to edit (one). Cropped to the VAE's 8 px grid, encoded once "
                               "(EmoEditor mode: resized to 224x224 instead)."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Starting latent: an empty latent to generate, or the source's latent "
                                "(then the source must be its size). Its noise mask is honoured. EmoEditor mode with "
                                "a source image does not use it: passes start from the 224 px source's encoding, "
                                "which also replaces the InstructPix2Pix concat image of the conditioning."),
                io.Clip.Input("clip", optional=True,
                              tooltip="CLIP of the positive conditioning: the loop re-steers positive along the "
                              "updated direction every pass (training-free Emotion Conditioning)."),
                model_combo("emotion_encoder", "emotion_encoder", fixed=(NO_ENCODER,),
                            default=NO_ENCODER, optional=True,
                            tooltip="EmoEditor emotion encoder: its tokens for the updated direction replace the "
                            "positive tokens every pass (keep InstructPix2Pix's concat image). Needed by EmoEditor mode."),
            ],
            outputs=[
                io.Image.Output("best_image", display_name="best image",
                                tooltip="The chosen candidate (EmoEditor mode: the 224 px source if none was accepted)."),
                io.Latent.Output("best_latent", display_name="best latent", tooltip="Its latent."),
                io.Image.Output("candidates", display_name="all candidates", tooltip="Every candidate, in order."),
                io.String.Output("loop_report", display_name="report",
                                 tooltip="JSON: per pass the seed, denoise, SSIM, 8-way distribution, accepted and "
                                 "why of each candidate; the pick and why."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, critic, target_emotion: str, seed: int, steps: int, cfg: float,
                sampler_name: str, scheduler: str, denoise_min: float, denoise_max: float, ssim_min: float,
                ssim_max: float, confidence: float, rule: str, max_iterations: int, candidates_per_iteration: int,
                mode: str = CUSTOM, direction=None, source_image=None, latent=None, clip=None,
                emotion_encoder: str = NO_ENCODER) -> io.NodeOutput:
        if not math.isfinite(cfg) or cfg < 0:
            raise InvalidInputError(f"cfg must be a finite number >= 0, got {cfg}")
        if mode not in PRESETS:
            raise InvalidInputError(f"mode must be one of {', '.join(PRESETS)}, got {mode!r}")
        for name, conditioning in (("positive", positive), ("negative", negative)):
            check_conditioning_for_model(model_config_name(model), conditioning, name)
        preset = PRESETS[mode]
        if preset is None:
            settings = LoopSettings(ssim_min, ssim_max, confidence, rule, max_iterations, candidates_per_iteration,
                                    denoise_min, denoise_max, seed)
            spread = False
        else:
            settings = preset.settings(seed, max_iterations)
            steps, cfg = preset.sampler.steps, preset.sampler.cfg
            sampler_name, scheduler, spread = preset.sampler.sampler_name, preset.sampler.scheduler, preset.sampler.spread_steps
        target = direction if direction is not None else make_direction(target_emotion)
        if preset is not None and preset.source_size is not None and source_image is not None:
            source, start, positive, negative = _at_preset_size(vae, source_image, positive, negative,
                                                                preset.source_size)
        else:
            source, start = _initial_latent(vae, source_image, latent)
        update = _conditioning_update(positive, clip, emotion_encoder, preset is not None and preset.needs_emotion_encoder)
        generate, finish = _sampler(model, vae, positive, negative, start, steps, cfg, sampler_name, scheduler, spread,
                                    settings.max_iterations)
        result = run_critic_loop(
            generate, lambda images: run_critic(critic, images), target, settings, source=source,
            update_conditioning=update, check_interrupt=mm.throw_exception_if_processing_interrupted,
        )
        finish()
        best_latent = dict(start)
        best_latent["samples"] = start["samples"] if result.best_index is None else result.best_latent  # None: the source
        best_latent.pop("batch_index", None)
        report = result.report
        outcome = summary(report)
        panel = {"target": outcome["target"], "best": outcome["best"], "pick": outcome["pick"],
                 "stopped": outcome["stopped"], "passes": outcome["passes"], "confidence": settings.confidence,
                 "ssim_window": [settings.ssim_low, settings.ssim_high]}
        preview = ui.PreviewImage(result.best_image, cls=cls).as_dict()
        return io.NodeOutput(result.best_image, best_latent, result.images, json.dumps(report),
                             ui={**preview, "emotion_loop": pass_series(report), "emotion_loop_summary": [panel]})


def _sampler(model, vae, positive, negative, start: dict, steps: int, cfg: float, sampler_name: str,
             scheduler: str, spread: bool, max_iterations: int):
    """The loop's ``generate`` (one batched sample + decode per pass) and a ``finish`` that
    completes the node's progress bar, which spans ``max_iterations * steps``."""
    initial = start["samples"]
    noise_mask = start.get("noise_mask")
    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    progress = comfy.utils.ProgressBar(max_iterations * steps)

    def generate(seeds, denoise, state):
        base = initial if state.base_latent is None else state.base_latent
        batch = comfy.sample.fix_empty_latent_channels(model, base.repeat(len(seeds), *([1] * (base.ndim - 1))))
        noise = torch.cat([comfy.sample.prepare_noise(batch[:1], seed) for seed in seeds])
        conditioning = positive if state.conditioning is None else state.conditioning
        offset = state.iteration * steps

        def callback(step, x0, x, total_steps):
            mm.throw_exception_if_processing_interrupted()
            preview = previewer.decode_latent_to_preview_image(PREVIEW_FORMAT, x0) if previewer else None
            progress.update_absolute(offset + round((step + 1) * steps / total_steps), preview=preview)

        if spread:
            samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, conditioning, negative,
                                          batch, denoise=denoise, noise_mask=noise_mask, callback=callback,
                                          disable_pbar=True, seed=seeds[0])
        else:
            schedule, first = pass_steps(steps, denoise, spread=False)
            samples = comfy.sample.sample(model, noise, schedule, cfg, sampler_name, scheduler, conditioning, negative,
                                          batch, start_step=first, last_step=schedule, force_full_denoise=True,
                                          noise_mask=noise_mask, callback=callback, disable_pbar=True, seed=seeds[0])
        mm.throw_exception_if_processing_interrupted()
        images = vae.decode(samples)
        if images.ndim == 5:  # video VAEs decode [B,T,H,W,C]; one frame per candidate here
            images = images[:, 0]
        return Candidates(images, samples)

    def finish():
        progress.update_absolute(max_iterations * steps)

    return generate, finish


NODES = [EmotionCriticLoop]
