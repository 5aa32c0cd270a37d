"""``bench guidance``: cost of three-branch negative-visual guidance against two-branch
classifier-free guidance, per sampling step, through the code that ships.

- Paths: ``pipeline`` runs ``pipeline.sampling.sample`` (the CLI's sampler) with the
  branches ``pipeline.branches.PromptBranches`` builds and the visual prompt patches of
  ``pipeline.visual.visual_prompt_patches``; ``comfyui`` (only with ``COMFYUI_PATH``, the real
  ComfyUI) runs the Negative Visual DPO guider of ``nodes/negative_visual_guidance.py``
  against ComfyUI's own ``CFGGuider`` on the same injected model (Visual Prompt Injector's
  code), both through ``guider.sample`` with Euler. ``--path auto`` runs every available
  path; the top-level figures are ComfyUI's when it ran (``"path"`` says which).
- Model: ``--unet`` (``benchmarks.models``): toy by default, ``sd15-full`` / ``sdxl`` real
  shapes, random weights, a random base adapter's visual prompts injected in both variants
  (the CFG variant sees the same positive/negative tokens).
- Time: seconds per step from the first UNet call to the end of the last step of a run
  (no set-up, no VAE), ``--repeats`` runs per variant interleaved, one torch thread
  (``benchmarks.timing``). ``ratio`` = median three-branch / median CFG; ``ratio_min`` uses
  minimums; ``noisy`` says when the spread makes them meaningless. Target <= 1.52 (three
  batch rows instead of two is 1.5).
- ``model_calls_per_step``: UNet forward calls per step, counted by a forward hook on the
  UNet itself (the product's calls, not this benchmark's loop). Target 1.
"""

from __future__ import annotations

import argparse
import logging
import os

from .models import (
    FULL_LATENT,
    add_unet_argument,
    build_unet,
    random_adapter,
    random_visual_prompt,
)
from .probes import CallCounter, StepClock, pipeline_runner
from .timing import (
    add_timing_arguments,
    check_timing_arguments,
    pinned_threads,
    ratio_figures,
    time_interleaved,
)

log = logging.getLogger(__name__)

RATIO_TARGET = 1.52
ROW_LIMIT = 1.5
CFG, VISUAL_SCALE, VISUAL_WEIGHT = 5.0, 2.0, 0.8
PATHS = ("auto", "pipeline", "comfyui")
MODELS = ("unet", "flux-tiny")
FLUX_RATIO_TARGET = 2.05  # two rows (positive, negative visual) instead of one at cfg 1
FLUX_LATENT = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_unet_argument(parser)
    parser.add_argument("--size", type=int, help="latent side (default: 32 toy, 64 sd15-full, 128 sdxl)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps per timed run (default 2)")
    add_timing_arguments(parser, repeats=7)
    parser.add_argument("--path", choices=PATHS, default="auto",
                        help="pipeline (the CLI's sampler), comfyui (needs COMFYUI_PATH) or auto (every available)")
    parser.add_argument("--model", choices=MODELS, default="unet",
                        help="unet (the --unet shapes) or flux-tiny (the tiny Flux dev test transformer in ComfyUI at "
                        "cfg 1: the DPO guider's two rows vs one plain row; needs COMFYUI_PATH)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, latent and text (default 0)")


def _pipeline_variants(model, patches, text, size: int, steps: int, seed: int, calls: dict, clock: str) -> dict:
    from ..guidance import cfg_guidance, negative_visual_guidance
    from ..pipeline.branches import PromptBranches

    positive, negative = text[:1], text[1:2]
    variants = {"cfg": PromptBranches(positive, negative, cfg_guidance(CFG)),
                "three_branch": PromptBranches(positive, negative, negative_visual_guidance(CFG, VISUAL_SCALE),
                                               negative_visual=True)}
    return {name: pipeline_runner(model.unet, branches.embeddings(positive), branches.guidance, patches, size, steps,
                                  seed, clock, calls, name, **branches.sample_options())
            for name, branches in variants.items()}


def _comfyui_variants(model, adapter, prompts, text, size: int, steps: int, seed: int, calls: dict,
                      clock: str) -> dict:
    """ComfyUI's CFGGuider on the Visual Prompt Injector's patched clone vs the pack's guider."""
    import torch

    from .comfyui_paths import comfy_model_patcher, load_pack

    guidance_nodes, visual_nodes = load_pack("negative_visual_guidance", "visual_prompt")
    import comfy.sample
    import comfy.samplers

    from ..visual_prompt import comfy_unet_attn2_sites, layer_weights

    patcher = comfy_model_patcher(model.unet)
    diffusion_model = patcher.get_model_object("diffusion_model")
    positive, negative = [[text[:1], {}]], [[text[1:2], {}]]
    awe, fear = prompts
    dpo = guidance_nodes.make_guider(patcher, adapter, positive, negative, awe, fear, CFG, VISUAL_SCALE, "constant",
                                     VISUAL_WEIGHT)
    injected = patcher.clone()
    sites = comfy_unet_attn2_sites(diffusion_model)
    visual_nodes.inject(injected, adapter, sites, awe, layer_weights("uniform", sites, VISUAL_WEIGHT))
    cfg = comfy.samplers.CFGGuider(injected)
    cfg.set_conds(positive, negative)
    cfg.set_cfg(CFG)
    latent = torch.zeros(1, 4, size, size)
    noise = comfy.sample.prepare_noise(latent, seed)
    sigmas = comfy.samplers.KSampler(patcher, steps=steps, device="cpu", sampler="euler", scheduler="normal",
                                     denoise=1.0).sigmas
    sampler = comfy.samplers.sampler_object("euler")

    def runner(name: str, guider):
        def run() -> float:
            with StepClock(diffusion_model, clock) as step_clock, CallCounter(diffusion_model) as counter:
                guider.sample(noise, latent, sampler, sigmas, callback=step_clock.step_done, disable_pbar=True, seed=seed)
            calls[name] = counter.count / steps
            return (step_clock.end - step_clock.start) / steps
        return run

    return {"cfg": runner("cfg", cfg), "three_branch": runner("three_branch", dpo)}


def _flux_variants(folder: str, size: int, steps: int, seed: int, calls: dict, clock: str) -> dict:
    """The tiny Flux dev test transformer in ComfyUI at cfg 1 (guidance-distilled: one row per step):
    ComfyUI's CFGGuider on the Visual Prompt Injector's output vs the pack's guider, whose
    ε_p + s_v(ε_p − ε_nv) is two rows in one call. Test XLabs adapter, random image features."""
    from pathlib import Path

    import torch

    from ..testing.adapter_assets import write_flux_test_adapters
    from ..testing.sdxl_flux_checkpoints import (
        FLUX_CONTEXT_DIM,
        FLUX_POOLED_DIM,
        write_flux_model,
    )
    from ..visual_prompt import build_visual_prompt, load_adapter
    from .comfyui_paths import load_pack

    guidance_nodes, visual_nodes = load_pack("negative_visual_guidance", "visual_prompt")
    import comfy.sample
    import comfy.samplers
    import comfy.sd

    names = {"flux_model": "flux.safetensors", "flux_vae": "flux_vae.safetensors",
             "adapter_flux_xlabs": "xlabs.safetensors", "adapter_flux_instantx": "instantx.safetensors"}
    patcher = comfy.sd.load_diffusion_model(str(write_flux_model(Path(folder), names, seed)["flux_model"]))
    adapter = load_adapter(write_flux_test_adapters(Path(folder), names, seed)["adapter_flux_xlabs"])
    g = torch.Generator().manual_seed(seed)
    awe, fear = (build_visual_prompt(adapter, lambda images: torch.randn(1, adapter.layout.feature_dim, generator=g),
                                     torch.rand(1, 8, 8, 3)) for _ in range(2))
    text = [[torch.randn(1, 16, FLUX_CONTEXT_DIM, generator=g),
             {"pooled_output": torch.randn(1, FLUX_POOLED_DIM, generator=g), "guidance": 3.5}]]
    dpo = guidance_nodes.make_guider(patcher, adapter, text, text, awe, fear, 1.0, VISUAL_SCALE, "constant",
                                     VISUAL_WEIGHT)
    injected = visual_nodes.VisualPromptInjector.execute(model=patcher, adapter=adapter, weight=VISUAL_WEIGHT,
                                                         weight_schedule="uniform", start_percent=0.0,
                                                         end_percent=1.0, visual_prompt=awe).args[0]
    plain = comfy.samplers.CFGGuider(injected)
    plain.set_conds(text, text)
    plain.set_cfg(1.0)
    noise = comfy.sample.prepare_noise(torch.zeros(1, 16, size, size), seed)
    sigmas = comfy.samplers.KSampler(patcher, steps=steps, device="cpu", sampler="euler", scheduler="simple",
                                     denoise=1.0).sigmas
    sampler = comfy.samplers.sampler_object("euler")

    def runner(name: str, guider):
        diffusion_model = guider.model_patcher.get_model_object("diffusion_model")

        def run() -> float:
            with StepClock(diffusion_model, clock) as step_clock, CallCounter(diffusion_model) as counter:
                guider.sample(noise, torch.zeros_like(noise), sampler, sigmas, callback=step_clock.step_done,
                              disable_pbar=True, seed=seed)
            calls[name] = counter.count / steps
            return (step_clock.end - step_clock.start) / steps
        return run

    return {"cfg": runner("cfg", plain), "three_branch": runner("three_branch", dpo)}


def _figures(path: str, timings: dict, calls: dict, target: float = RATIO_TARGET) -> dict:
    figures = ratio_figures(timings["three_branch"], timings["cfg"], target)
    figures["within_target"] = figures["within_target"] and calls["three_branch"] == 1.0
    return {
        "path": path,
        "cfg_s_per_step": round(timings["cfg"].median, 4),
        "three_branch_s_per_step": round(timings["three_branch"].median, 4),
        **figures,
        "model_calls_per_step": calls["three_branch"],
        "cfg_model_calls_per_step": calls["cfg"],
        "timings": {name: timing.summary() for name, timing in timings.items()},
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..errors import InvalidInputError
    from ..guidance import with_negative_visual
    from ..pipeline.visual import visual_prompt_patches

    check_timing_arguments(args)
    size = args.size or FULL_LATENT[args.unet]
    if size < 8 or size % 8 or args.steps < 1:
        raise InvalidInputError("--size must be a multiple of 8 (>= 8); --steps >= 1")
    comfyui = bool(os.environ.get("COMFYUI_PATH"))
    if args.path == "comfyui" and not comfyui:
        raise InvalidInputError("--path comfyui needs COMFYUI_PATH set to a ComfyUI checkout")
    if args.model == "flux-tiny":
        return _run_flux(args, comfyui)
    paths = [p for p in ("pipeline", "comfyui") if args.path in (p, "auto") and (p != "comfyui" or comfyui)]
    with pinned_threads(args.threads):
        model = build_unet(args.unet, args.seed)
        adapter, _ = random_adapter(model, args.seed)
        awe = random_visual_prompt(adapter, "awe", args.seed)
        fear = random_visual_prompt(adapter, "fear", args.seed + 1)
        text = torch.randn(2, 77, model.text_width, generator=torch.Generator().manual_seed(args.seed))
        results = {}
        for path in paths:
            calls: dict = {}
            if path == "pipeline":
                patches = visual_prompt_patches(model.unet, adapter, [(with_negative_visual(awe, fear), VISUAL_WEIGHT)])
                variants = _pipeline_variants(model, patches, text, size, args.steps, args.seed, calls, args.clock)
            else:
                variants = _comfyui_variants(model, adapter, (awe, fear), text, size, args.steps, args.seed, calls,
                                              args.clock)
            with torch.no_grad():
                timings = time_interleaved(variants, args.repeats, clock=args.clock)
            results[path] = _figures(path, timings, calls)
            log.info("%s: three-branch/CFG %.3f (min %.3f), %s model calls per step", path, results[path]["ratio"],
                     results[path]["ratio_min"], calls["three_branch"])
    primary = results["comfyui" if "comfyui" in results else "pipeline"]
    return {
        "benchmark": "guidance",
        "model": model.description + ", visual prompt injected",
        "unet": args.unet,
        "latent": [1, 4, size, size],
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "clock": args.clock,
        **primary,
        "batch_row_limit": ROW_LIMIT,
        "paths": results,
    }


def _run_flux(args: argparse.Namespace, comfyui: bool) -> dict:
    import tempfile

    import torch

    from ..errors import InvalidInputError

    if not comfyui or args.path == "pipeline":
        raise InvalidInputError("--model flux-tiny runs in ComfyUI only: set COMFYUI_PATH (the CLI pipeline is SD1.5)")
    size = args.size or FLUX_LATENT
    calls: dict = {}
    with pinned_threads(args.threads), tempfile.TemporaryDirectory(prefix="bench_flux_") as folder:
        variants = _flux_variants(folder, size, args.steps, args.seed, calls, args.clock)
        with torch.no_grad():
            timings = time_interleaved(variants, args.repeats, clock=args.clock)
    figures = _figures("comfyui", timings, calls, FLUX_RATIO_TARGET)
    figures["within_target"] = figures["ratio_min"] <= FLUX_RATIO_TARGET and not figures["noisy"] \
        and calls["three_branch"] == 1.0
    return {"benchmark": "guidance", "model": "tiny Flux dev test transformer (ComfyUI), XLabs IP-Adapter, cfg 1",
            "unet": "flux-tiny", "latent": [1, 16, size, size], "steps": args.steps, "repeats": args.repeats,
            "threads": args.threads, "clock": args.clock, **figures, "batch_row_limit": 2.0,
            "paths": {"comfyui": figures}}
