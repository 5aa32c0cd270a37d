"""``bench guidance``: cost of three-branch negative-visual guidance against standard
two-branch classifier-free guidance, side by side in one run on the same model.

- Model: a diffusers ``UNet2DConditionModel`` at SD1.5 widths (320/640 channels, 768-wide
  text, 8 heads), shallow (2 levels, 7 cross-attention blocks), random weights, with a
  random SD1.5 base visual prompt adapter injected in both variants (the positive,
  negative and negative-visual token roles of the DPO sampler).
- Each step evaluates every branch in ONE batched UNet call (counted with a forward
  hook: ``model_calls_per_step``) and combines them with the pipeline's guidances from
  ``emotion_core.guidance``: ``cfg_guidance`` over [cond, uncond] (batch 2) vs
  ``negative_visual_guidance``, ε_u + s·(ε_p − ε_u) + s_v·(ε_p − ε_nv), over
  [cond, uncond, negative visual] (batch 3).
- ``ratio`` = median three-branch / median two-branch seconds per step, runs
  interleaved after a warm-up. Target <= 1.6; the batch-row limit is 1.5 (3/2 rows).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

log = logging.getLogger(__name__)

RATIO_TARGET = 1.6
ROW_LIMIT = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=32, help="latent side (32 = 256 px images; default 32)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps per timed run (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant, interleaved (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, latent and text (default 0)")


def _patches(unet, seed: int):
    import torch

    from ..testing.adapter_assets import adapter_shapes, random_state_dict
    from ..visual_prompt import (NEGATIVE, NEGATIVE_VISUAL, POSITIVE, ProjectedPrompt, VisualPrompt,
                                 VisualPromptAdapter, VisualPromptInjection, layer_weights, make_patches)
    from ..visual_prompt.diffusers_unet import diffusers_attn2_sites

    sites = diffusers_attn2_sites(unet)
    adapter = VisualPromptAdapter.from_state_dict(
        random_state_dict(adapter_shapes("base", 768, [s.inner_dim for s in sites]), seed=seed))
    g = torch.Generator().manual_seed(seed)
    tokens = {role: adapter.project(torch.randn(1, 1024, generator=g))[0] for role in (POSITIVE, NEGATIVE,
                                                                                         NEGATIVE_VISUAL)}
    prompt = VisualPrompt(tokens, "sd15", "base", 768)
    injection = VisualPromptInjection(ProjectedPrompt.from_prompt(adapter, prompt), layer_weights("uniform", sites,
                                                                                                  0.8))
    return [patch for _, patch in make_patches(injection, sites, {})]


def _sample(unet, latent, text, steps: int, options: dict, branches: int, cfg: float = 5.0,
            visual_scale: float = 2.0) -> float:
    """Euler with all branches in one batch; returns seconds per step."""
    import torch

    from ..guidance import StepInfo, cfg_guidance, negative_visual_guidance, negative_visual_roles

    guidance = cfg_guidance(cfg) if branches == 2 else negative_visual_guidance(cfg, visual_scale)
    sigmas = torch.linspace(14.6, 0.0, steps + 1)
    x = latent * sigmas[0]
    options["cond_or_uncond"] = list(range(branches))
    options.update(negative_visual_roles())
    context = text[:branches]
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(steps):
            sigma = sigmas[i]
            timestep = 999.0 * (1 - i / steps)
            options["sigmas"] = sigma.expand(latent.shape[0])
            x_in = torch.cat([x] * branches) / torch.sqrt(sigma ** 2 + 1)
            outputs = unet(x_in, timestep, context).sample.chunk(branches)
            eps = guidance(outputs, StepInfo(i, steps, timestep, float(sigma)))
            x = x + eps * (sigmas[i + 1] - sigma)
    return (time.perf_counter() - start) / steps


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..errors import InvalidInputError
    from ..visual_prompt.diffusers_unet import patched
    from .injector_bench import _unet

    if args.size < 8 or args.size % 8 or args.steps < 1 or args.repeats < 1:
        raise InvalidInputError("--size must be a multiple of 8 (>= 8); --steps and --repeats >= 1")
    unet = _unet(args.seed)
    patches = _patches(unet, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    latent = torch.randn(1, 4, args.size, args.size, generator=generator)
    text = torch.randn(3, 77, 768, generator=generator)
    calls = {"count": 0}
    hook = unet.register_forward_hook(lambda *_: calls.__setitem__("count", calls["count"] + 1))
    timings: dict[int, list[float]] = {2: [], 3: []}
    calls_per_step: dict[int, float] = {}
    try:
        with patched(unet, patches) as options:
            for branches in (2, 3):  # warm-up: allocator, kernels
                _sample(unet, latent, text, 1, options, branches)
            for repeat in range(args.repeats):
                for branches in (2, 3):
                    calls["count"] = 0
                    timings[branches].append(_sample(unet, latent, text, args.steps, options, branches))
                    calls_per_step[branches] = calls["count"] / args.steps
                log.info("repeat %d: two-branch %.3f s/step, three-branch %.3f s/step", repeat + 1, timings[2][-1],
                         timings[3][-1])
    finally:
        hook.remove()
    two, three = statistics.median(timings[2]), statistics.median(timings[3])
    ratio = three / two
    return {
        "benchmark": "guidance",
        "model": "diffusers UNet2DConditionModel, SD1.5 widths, 2 levels, visual prompt injected",
        "latent": [1, 4, args.size, args.size],
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cfg_s_per_step": round(two, 4),
        "three_branch_s_per_step": round(three, 4),
        "ratio": round(ratio, 4),
        "ratio_target": RATIO_TARGET,
        "batch_row_limit": ROW_LIMIT,
        "model_calls_per_step": calls_per_step[3],
        "cfg_model_calls_per_step": calls_per_step[2],
        "within_target": ratio <= RATIO_TARGET,
    }
