"""``bench injector``: cost of the Visual Prompt Injector, per sampling step and in memory,
plain against injected on the same model, latent and text, through the code that ships.

- Paths: ``diffusers`` runs ``pipeline.sampling.sample`` (the CLI's sampler, CFG with both
  branches in one batch) without and with ``pipeline.visual.visual_prompt_patches``;
  ``comfyui`` (only with ``COMFYUI_PATH``, the real ComfyUI) runs ComfyUI's ``CFGGuider`` on
  the model and on the ``VisualPromptInjector`` node's output. ``--path auto`` runs every
  available path; the top-level time figures are ComfyUI's when it ran (``"path"``).
- Model: ``--unet`` (``benchmarks.models``): toy by default (7 cross-attention blocks),
  ``sd15-full`` (64x64 latent) or ``sdxl`` (128x128), random weights; a random base adapter at
  the real projection shape (ViT-H 1024 -> 4 tokens) for every cross-attention block.
- Time: seconds per step from the first UNet call to the end of the last step, ``--repeats``
  runs per variant interleaved, one torch thread (``benchmarks.timing``). ``ratio`` = median
  injected / median plain; ``ratio_min`` uses minimums; ``noisy`` when the spread makes them
  meaningless. Target <= 1.05.
- Memory (diffusers path, one step): the peak of the tensors a step holds (model weights, the
  injector's projected keys/values, live activations counted op by op with a dispatch mode).
  ``memory_growth_ratio`` = (injected peak - plain peak) / adapter weight bytes, sampling-time
  only (the adapter is not needed while sampling: keys/values are projected once).
  ``resident_growth_ratio`` = (injected resident peak - plain peak) / adapter bytes, where the
  resident peak also counts the loaded adapter as ComfyUI holds it (the loader node's output
  stays cached, in the file's dtype, for as long as the graph may run again). Target <= 1.10.
"""

from __future__ import annotations

import argparse
import logging
import os
import weakref

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

RATIO_TARGET = 1.05
MEMORY_TARGET = 1.10
CFG, WEIGHT = 5.0, 1.0
PATHS = ("auto", "diffusers", "comfyui")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_unet_argument(parser)
    parser.add_argument("--size", type=int, help="latent side (default: 32 toy, 64 sd15-full, 128 sdxl)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps per timed run (default 2)")
    add_timing_arguments(parser, repeats=7)
    parser.add_argument("--images", type=int, default=1, help="visual prompt images (4 tokens each; default 1)")
    parser.add_argument("--path", choices=PATHS, default="auto",
                        help="diffusers (the CLI's sampler), comfyui (needs COMFYUI_PATH) or auto (every available)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, latent and text (default 0)")


class LiveTensorBytes:
    """Peak bytes of tensor storages allocated while active (views and in-place results are
    not new memory). Counts every aten op's outputs through a dispatch mode."""

    def __init__(self) -> None:
        self.live = self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage pointer -> [bytes, live tensors]

    def mode(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                          if isinstance(t, torch.Tensor)}
                for tensor in tree_flatten(out)[0]:
                    if isinstance(tensor, torch.Tensor):
                        tracker._track(tensor, inputs)
                return out

        return _Mode()

    def _track(self, tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer == 0 or (pointer in inputs and pointer not in self._refs):
            return  # empty, or an alias of memory that existed before
        entry = self._refs.get(pointer)
        if entry is None:
            entry = self._refs[pointer] = [storage.nbytes(), 0]
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        weakref.finalize(tensor, self._release, pointer)

    def _release(self, pointer: int) -> None:
        entry = self._refs[pointer]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._refs[pointer]


def _tensor_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _comfyui_variants(model, adapter, prompt, text, size: int, steps: int, seed: int, calls: dict,
                      clock: str) -> dict:
    """ComfyUI's CFGGuider on the model and on the Visual Prompt Injector node's patched clone."""
    import torch

    from .comfyui_paths import comfy_model_patcher, load_pack

    (visual_nodes,) = load_pack("visual_prompt")
    import comfy.sample
    import comfy.samplers

    patcher = comfy_model_patcher(model.unet)
    injected = visual_nodes.VisualPromptInjector.execute(model=patcher, adapter=adapter, weight=WEIGHT,
                                                         weight_schedule="uniform", start_percent=0.0,
                                                         end_percent=1.0, visual_prompt=prompt).args[0]
    positive, negative = [[text[:1], {}]], [[text[1:2], {}]]
    noise = comfy.sample.prepare_noise(torch.zeros(1, 4, size, size), seed)
    sigmas = comfy.samplers.KSampler(patcher, steps=steps, device="cpu", sampler="euler", scheduler="normal",
                                     denoise=1.0).sigmas
    sampler = comfy.samplers.sampler_object("euler")

    def runner(name: str, model_patcher):
        guider = comfy.samplers.CFGGuider(model_patcher)
        guider.set_conds(positive, negative)
        guider.set_cfg(CFG)
        diffusion_model = model_patcher.get_model_object("diffusion_model")

        def run() -> float:
            with StepClock(diffusion_model, clock) as step_clock, CallCounter(diffusion_model) as counter:
                guider.sample(noise, torch.zeros_like(noise), sampler, sigmas, callback=step_clock.step_done,
                              disable_pbar=True, seed=seed)
            calls[name] = counter.count / steps
            return (step_clock.end - step_clock.start) / steps
        return run

    return {"plain": runner("plain", patcher), "injected": runner("injected", injected)}


def _memory(model, adapter, adapter_bytes: int, patches, text, size: int, seed: int) -> dict:
    """Sampling-time and resident peaks of one diffusers step, plain and injected."""
    from ..guidance import cfg_guidance

    weights = _tensor_bytes(model.unet)
    kv_bytes = sum(patch.injection.weight_bytes() for patch in patches[:1])
    peaks = {}
    for name, variant_patches in (("plain", None), ("injected", patches)):
        run = pipeline_runner(model.unet, [text[:1], text[1:2]], cfg_guidance(CFG), variant_patches, size, 1, seed,
                              "cpu", {}, name)
        tracker = LiveTensorBytes()
        with tracker.mode():
            run()
        peaks[name] = weights + tracker.peak + (kv_bytes if variant_patches else 0)
    resident_adapter = _tensor_bytes(adapter)
    growth = peaks["injected"] - peaks["plain"]
    resident_growth = growth + resident_adapter
    return {
        "plain_peak_bytes": peaks["plain"],
        "injected_peak_bytes": peaks["injected"],
        "memory_growth_bytes": growth,
        "adapter_weight_bytes": adapter_bytes,
        "projected_kv_bytes": kv_bytes,
        "memory_growth_ratio": round(growth / adapter_bytes, 4),
        "adapter_resident_bytes": resident_adapter,
        "injected_resident_peak_bytes": peaks["injected"] + resident_adapter,
        "resident_growth_bytes": resident_growth,
        "resident_growth_ratio": round(resident_growth / adapter_bytes, 4),
        "memory_target": MEMORY_TARGET,
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..errors import InvalidInputError
    from ..guidance import cfg_guidance
    from ..pipeline.visual import visual_prompt_patches

    check_timing_arguments(args)
    size = args.size or FULL_LATENT[args.unet]
    if size < 8 or size % 8 or args.steps < 1 or args.images < 1:
        raise InvalidInputError("--size must be a multiple of 8 (>= 8); --steps and --images >= 1")
    comfyui = bool(os.environ.get("COMFYUI_PATH"))
    if args.path == "comfyui" and not comfyui:
        raise InvalidInputError("--path comfyui needs COMFYUI_PATH set to a ComfyUI checkout")
    paths = [p for p in ("diffusers", "comfyui") if args.path in (p, "auto") and (p != "comfyui" or comfyui)]
    with pinned_threads(args.threads), torch.no_grad():
        model = build_unet(args.unet, args.seed)
        adapter, adapter_bytes = random_adapter(model, args.seed)
        prompt = random_visual_prompt(adapter, "awe", args.seed, args.images)
        patches = visual_prompt_patches(model.unet, adapter, [(prompt, WEIGHT)])
        text = torch.randn(2, 77, model.text_width, generator=torch.Generator().manual_seed(args.seed))
        results = {}
        for path in paths:
            calls: dict = {}
            if path == "diffusers":
                guidance = cfg_guidance(CFG)
                variants = {name: pipeline_runner(model.unet, [text[:1], text[1:2]], guidance, variant_patches, size,
                                                  args.steps, args.seed, args.clock, calls, name)
                            for name, variant_patches in (("plain", None), ("injected", patches))}
            else:
                variants = _comfyui_variants(model, adapter, prompt, text, size, args.steps, args.seed, calls,
                                             args.clock)
            timings = time_interleaved(variants, args.repeats, clock=args.clock)
            figures = ratio_figures(timings["injected"], timings["plain"], RATIO_TARGET)
            results[path] = {"path": path, "plain_s_per_step": round(timings["plain"].median, 4),
                             "injected_s_per_step": round(timings["injected"].median, 4), **figures,
                             "model_calls_per_step": calls["injected"],
                             "timings": {name: timing.summary() for name, timing in timings.items()}}
            log.info("%s: injected/plain %.3f (min %.3f)", path, figures["ratio"], figures["ratio_min"])
        memory = _memory(model, adapter, adapter_bytes, patches, text, size, args.seed)
    primary = results["comfyui" if "comfyui" in results else "diffusers"]
    return {
        "benchmark": "injector",
        "model": model.description,
        "unet": args.unet,
        "cross_attention_layers": len(patches),
        "latent": [1, 4, size, size],
        "image_tokens": 4 * args.images,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "clock": args.clock,
        **primary,
        **memory,
        "within_targets": primary["within_target"] and memory["resident_growth_ratio"] <= MEMORY_TARGET,
        "paths": results,
    }
