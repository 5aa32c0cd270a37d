"""``bench injector``: cost of the Visual Prompt Injector, side by side in one run on the
same model, latent and text.

- Model: a diffusers ``UNet2DConditionModel`` at SD1.5 widths (320/640 channels,
  768-wide text, 8 heads) but shallow (2 levels, 7 cross-attention blocks, like
  the test checkpoint), random weights; a random SD1.5 base adapter at the real
  projection shape (ViT-H 1024 -> 4 x 768) for those blocks.
- Time: Euler sampling with CFG (both branches in one batch), plain and injected
  runs interleaved after a warm-up; ``ratio`` = median injected / median plain
  seconds per step. Target <= 1.10.
- Memory: peak of the tensors a sampling step holds (model weights, the
  injector's projected keys/values, and live activations, counted op by op with
  a dispatch mode) for each variant; ``memory_growth_ratio`` = (injected peak -
  plain peak) / adapter weight bytes. Target <= 1.10 (growth at most the
  adapter's weights + 10 %). The adapter itself is not needed while sampling:
  keys/values are projected once at injection.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import weakref

log = logging.getLogger(__name__)

RATIO_TARGET = 1.10
MEMORY_TARGET = 1.10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=32, help="latent side (32 = 256 px images; default 32)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps per timed run (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant, interleaved (default 3)")
    parser.add_argument("--images", type=int, default=1, help="visual prompt images (4 tokens each; default 1)")
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


def _unet(seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(320, 640), layers_per_block=1, cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), sample_size=64,
    ).eval().requires_grad_(False)


def _injection(unet, images: int, seed: int):
    """Patches for every attn2 of ``unet`` from a random real-shaped SD1.5 base adapter."""
    import torch

    from ..testing.adapter_assets import adapter_shapes, random_state_dict
    from ..visual_prompt import (ProjectedPrompt, VisualPromptAdapter, VisualPromptInjection, build_visual_prompt,
                                 layer_weights, make_patches)
    from ..visual_prompt.diffusers_unet import diffusers_attn2_sites

    sites = diffusers_attn2_sites(unet)
    state = random_state_dict(adapter_shapes("base", 768, [s.inner_dim for s in sites]), seed=seed)
    adapter_bytes = sum(t.numel() * t.element_size() for t in state.values())
    adapter = VisualPromptAdapter.from_state_dict(state)
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(images, 1024, generator=generator)
    prompt = build_visual_prompt(adapter, lambda batch: embeds, torch.zeros(images, 8, 8, 3))
    injection = VisualPromptInjection(ProjectedPrompt.from_prompt(adapter, prompt), layer_weights("uniform", sites, 1.0))
    patches = [patch for _, patch in make_patches(injection, sites, {})]
    return patches, injection, adapter_bytes, len(sites)


def _sample(unet, latent, text, steps: int, options: dict, cfg: float = 5.0) -> float:
    """Euler + CFG with both branches in one batch (uncond first); returns seconds per step."""
    import torch

    from ..guidance import StepInfo, cfg_guidance

    guidance = cfg_guidance(cfg)
    sigmas = torch.linspace(14.6, 0.0, steps + 1)
    x = latent * sigmas[0]
    options["cond_or_uncond"] = [1, 0]
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(steps):
            sigma = sigmas[i]
            options["sigmas"] = sigma.expand(latent.shape[0])
            x_in = torch.cat([x, x]) / torch.sqrt(sigma ** 2 + 1)
            timestep = 999.0 * (1 - i / steps)
            uncond, cond = unet(x_in, timestep, text).sample.chunk(2)
            x = x + guidance([cond, uncond], StepInfo(i, steps, timestep, float(sigma))) * (sigmas[i + 1] - sigma)
    return (time.perf_counter() - start) / steps


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..errors import InvalidInputError
    from ..visual_prompt.diffusers_unet import patched

    if args.size < 8 or args.size % 8 or args.steps < 1 or args.repeats < 1 or args.images < 1:
        raise InvalidInputError("--size must be a multiple of 8 (>= 8); --steps, --repeats and --images >= 1")
    unet = _unet(args.seed)
    patches, injection, adapter_bytes, layers = _injection(unet, args.images, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    latent = torch.randn(1, 4, args.size, args.size, generator=generator)
    text = torch.randn(2, 77, 768, generator=generator)

    def variant(injected: bool, steps: int) -> float:
        if not injected:
            return _sample(unet, latent, text, steps, {})
        with patched(unet, patches) as options:
            return _sample(unet, latent, text, steps, options)

    variant(False, 1), variant(True, 1)  # warm-up: allocator, kernels
    plain, injected = [], []
    for repeat in range(args.repeats):
        plain.append(variant(False, args.steps))
        injected.append(variant(True, args.steps))
        log.info("repeat %d: plain %.3f s/step, injected %.3f s/step", repeat + 1, plain[-1], injected[-1])

    weights = sum(p.numel() * p.element_size() for p in unet.parameters())
    peaks = {}
    for name, is_injected in (("plain", False), ("injected", True)):
        tracker = LiveTensorBytes()
        with tracker.mode():
            variant(is_injected, 1)
        peaks[name] = weights + tracker.peak + (injection.weight_bytes() if is_injected else 0)
    ratio = statistics.median(injected) / statistics.median(plain)
    growth = peaks["injected"] - peaks["plain"]
    return {
        "benchmark": "injector",
        "model": "diffusers UNet2DConditionModel, SD1.5 widths, 2 levels",
        "cross_attention_layers": layers,
        "latent": [1, 4, args.size, args.size],
        "image_tokens": 4 * args.images,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "plain_s_per_step": round(statistics.median(plain), 4),
        "injected_s_per_step": round(statistics.median(injected), 4),
        "ratio": round(ratio, 4),
        "ratio_target": RATIO_TARGET,
        "plain_peak_bytes": peaks["plain"],
        "injected_peak_bytes": peaks["injected"],
        "memory_growth_bytes": growth,
        "adapter_weight_bytes": adapter_bytes,
        "projected_kv_bytes": injection.weight_bytes(),
        "memory_growth_ratio": round(growth / adapter_bytes, 4),
        "memory_target": MEMORY_TARGET,
        "within_targets": ratio <= RATIO_TARGET and growth / adapter_bytes <= MEMORY_TARGET,
    }
