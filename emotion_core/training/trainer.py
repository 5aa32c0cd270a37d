"""The negative-visual Diffusion-DPO training loop on HuggingFace ``accelerate``.

``Accelerator(mixed_precision, gradient_accumulation_steps)`` prepares the model (DDP when
launched on several processes), the optimizer, the sharded dataloader and the learning-rate
schedule; the loop uses ``accelerator.accumulate`` / ``backward``; checkpoints are
``save_state`` / ``load_state`` folders; figures go through ``accelerator.log``. The same
call runs in one CPU process or under ``accelerate launch`` on many GPUs.

Reproducible: the data order and every draw's timestep and noise are a function of the
seed and the draw's position (``draws``), so N processes × batch B equal one process ×
batch N·B, and a resumed run continues the uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import InvalidInputError
from ..visual_prompt import VisualPromptAdapter
from . import checkpoints
from .data import Example, as_image, load_square
from .dpo import DPOTerms, diffusion_dpo_loss
from .draws import DrawDataset, SeededDrawSampler, collate_draws, seed_of
from .latent_cache import DEFAULT_BUDGET_GB, LatentCache, distinct_images, fits_budget, module_digest
from .lora import add_unet_lora, comfyui_lora_state, remove_unet_lora, require_peft
from .memory import advise_on_oom
from .model import DPOModule
from .tracking import LOG_CHOICES, log_with

log = logging.getLogger(__name__)

TRAIN_CHOICES = ("adapter", "unet-lora", "both")
PRECISIONS = ("no", "bf16", "fp16")
CACHE_CHOICES = ("auto", "on", "off")
SUMMARY_WINDOW = 10
VISUAL_CACHE = 256  # visual prompts whose image-encoder features are kept in memory


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    beta: float = 5000.0
    lr: float = 1e-5
    adam_epsilon: float = 1e-8
    batch_size: int = 1  # pairs per process and micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    resolution: int = 512
    seed: int = 0
    train: str = "adapter"
    lora_rank: int = 4
    lora_alpha: float = 4.0
    mixed_precision: str | None = None  # None: what accelerate launch / accelerate config set, else "no"
    lr_warmup_steps: int = 0
    checkpoint_every: int = 0  # 0: no intermediate checkpoints
    checkpoint_dir: Path | None = None
    resume: bool = False
    cache_latents: str = "auto"
    cache_dir: Path | None = None
    cache_budget_gb: float = DEFAULT_BUDGET_GB
    log_with: str = "none"
    log_dir: Path | None = None
    log_every: int = 10

    @property
    def trains_adapter(self) -> bool:
        return self.train in ("adapter", "both")

    @property
    def trains_lora(self) -> bool:
        return self.train in ("unet-lora", "both")

    def check(self) -> None:
        if min(self.steps, self.batch_size, self.grad_accum, self.log_every) < 1 or self.checkpoint_every < 0 \
                or self.lr_warmup_steps < 0:
            raise InvalidInputError("steps, batch size, gradient accumulation must be >= 1, checkpoint interval and "
                                    "warm-up >= 0")
        if not self.beta > 0 or not self.lr > 0 or not self.adam_epsilon > 0:
            raise InvalidInputError(f"beta, lr and Adam epsilon must be > 0, got beta {self.beta}, lr {self.lr}, "
                                    f"epsilon {self.adam_epsilon}")
        if self.resolution < 8 or self.resolution % 8:
            raise InvalidInputError(f"resolution must be a positive multiple of 8, got {self.resolution}")
        for name, value, choices in (("train", self.train, TRAIN_CHOICES),
                                     ("mixed precision", self.mixed_precision or "no", PRECISIONS),
                                     ("cache latents", self.cache_latents, CACHE_CHOICES),
                                     ("log with", self.log_with, LOG_CHOICES)):
            if value not in choices:
                raise InvalidInputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if (self.checkpoint_every or self.resume) and self.checkpoint_dir is None:
            raise InvalidInputError("checkpoints need a checkpoint folder")
        if self.cache_latents == "on" and self.cache_dir is None:
            raise InvalidInputError("--cache-latents on needs a cache folder")


@dataclass
class TrainResult:
    adapter: VisualPromptAdapter  # trained (float32, CPU), or the input one when only the LoRA trained
    lora: dict[str, torch.Tensor] | None  # ComfyUI (kohya) LoRA tensors when the LoRA trained
    start_step: int
    steps: int
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)  # implicit reward accuracy per optimizer step
    margins: list[float] = field(default_factory=list)
    seconds_per_step: float | None = None
    processes: int = 1
    global_batch: int = 1
    cached_latents: bool = False
    is_main_process: bool = True

    def summary(self) -> dict:
        """Figures over the last steps, for the final JSON."""
        def tail(values):
            window = values[-SUMMARY_WINDOW:]
            return round(sum(window) / len(window), 6) if window else None

        return {"final_loss": tail(self.losses), "reward_accuracy": tail(self.accuracies),
                "final_margin": tail(self.margins), "seconds_per_step": self.seconds_per_step,
                "processes": self.processes, "global_batch": self.global_batch, "cached_latents": self.cached_latents}


def _accelerator(config: TrainConfig, find_unused: bool):
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState

    # one process may train several times (tests, notebooks) with other precisions; the
    # process group (PartialState) is kept
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    tracker = log_with(config.log_with, config.log_dir, "train-dpo")
    try:
        return Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                           log_with=tracker, project_dir=str(config.log_dir) if config.log_dir else None,
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused)])
    except ValueError as exc:  # e.g. fp16 on a CPU
        raise InvalidInputError(f"--mixed-precision {config.mixed_precision}: {exc}") from exc


def _uses_features(source) -> bool:
    return source.tokens is None


def _visual_source(adapter: VisualPromptAdapter, encoder) -> Callable[[object], dict]:
    """A visual prompt as the model reads it: fixed ``tokens``, or image-encoder ``embeds``
    (given, or encoded here from images) that the adapter's projection turns into tokens.
    The image encoder is frozen, so a prompt's images are encoded once (visual prompts are
    shared by many pairs: a bank's clusters, an emotion's swatches)."""
    @functools.lru_cache(maxsize=VISUAL_CACHE)
    def encoded(images: tuple) -> torch.Tensor:
        pixels = torch.cat([load_square(path, encoder.image_size) for path in images])
        return encoder.features(as_image(pixels), adapter.layout.feature_name).float().cpu()

    def visual(source) -> dict:
        if source.tokens is not None:
            return {"tokens": source.tokens.float()}
        embeds = getattr(source, "embeds", None)
        return {"embeds": (encoded(tuple(source.images)) if embeds is None else embeds.float().cpu())}

    return visual


def _latent_source(pipe, examples: Sequence[Example], config: TrainConfig, accelerator) -> tuple[Callable, bool]:
    """``latents(path)`` from the VAE on the fly, or from the latent cache after one pass."""
    from ..pipeline import encode_image

    @torch.no_grad()
    def encode(path) -> torch.Tensor:
        return encode_image(pipe, as_image(load_square(path, config.resolution)))[0]

    paths = distinct_images(p for e in examples for p in (e.pair.chosen, e.pair.rejected))
    use = config.cache_latents == "on" or (config.cache_latents == "auto" and config.cache_dir is not None
                                           and fits_budget(len(paths), config.resolution, config.cache_budget_gb))
    if not use:
        return encode, False
    cache = LatentCache(config.cache_dir, module_digest(pipe.vae), config.resolution)
    started = time.perf_counter()
    encoded = cache.fill(paths, encode, (accelerator.process_index, accelerator.num_processes))
    accelerator.wait_for_everyone()
    log.info("latent cache %s: %d images, %d encoded by this process in %.1f s", cache.folder, len(paths), encoded,
             time.perf_counter() - started)
    return cache.latents, True


def _warmup(processes: int, warmup_steps: int) -> Callable[[int], float]:
    # accelerate steps a prepared scheduler once per process for every optimizer step
    return lambda count: min(1.0, (count // processes + 1) / (warmup_steps + 1))


def _settings(config: TrainConfig, adapter: VisualPromptAdapter, processes: int) -> dict:
    lora = config.trains_lora
    return {"train": config.train, "lora_rank": config.lora_rank if lora else None,
            "lora_alpha": config.lora_alpha if lora else None, "world_size": processes, "seed": config.seed,
            "beta": config.beta, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
            "resolution": config.resolution, "adapter_digest": module_digest(adapter)}


def train_dpo(pipe, adapter: VisualPromptAdapter, examples: Sequence[Example], config: TrainConfig,
              image_encoder=None, progress: bool = True,
              on_step: Callable[[int, DPOTerms], None] | None = None) -> TrainResult:
    """Train what ``config.train`` names; the pipeline and ``adapter`` are left as given."""
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError("train-dpo runs on HuggingFace accelerate, which is not installed: "
                                "pip install 'emotion-director[train]'") from exc
    config.check()
    if not examples:
        raise InvalidInputError("no usable preference pairs to train on")
    if config.trains_lora:
        require_peft()
    sources = [s for e in examples for s in (e.positive, e.negative)]
    with_projection = config.trains_adapter and any(_uses_features(s) for s in sources)
    if image_encoder is None and any(s.tokens is None and getattr(s, "embeds", None) is None for s in sources):
        raise InvalidInputError("some visual prompts are images (or missing, so the pair's own images are used); "
                                "they need a CLIP vision image encoder (the base model's image_encoder/ folder)")
    accelerator = _accelerator(config, find_unused=with_projection and not all(_uses_features(s) for s in sources))
    device, processes = accelerator.device, accelerator.num_processes
    pipe.to(device)
    if image_encoder is not None:
        image_encoder.model.to(device)
    settings = _settings(config, adapter, processes)
    if config.trains_lora:
        add_unet_lora(pipe.unet, config.lora_rank, config.lora_alpha, seed_of(config.seed, "lora"))
    try:
        with advise_on_oom(config.batch_size, config.grad_accum, processes, config.resolution,
                           str(accelerator.mixed_precision)):
            return _train(pipe, adapter, examples, config, image_encoder, accelerator, settings, with_projection,
                          progress, on_step)
    finally:
        if config.trains_lora:
            remove_unet_lora(pipe.unet)
        accelerator.end_training()


def _train(pipe, adapter, examples, config: TrainConfig, encoder, accelerator, settings: dict,
           with_projection: bool, progress: bool, on_step) -> TrainResult:
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..pipeline import encode_prompts

    processes = accelerator.num_processes
    module = DPOModule(pipe.unet, adapter, pipe.scheduler.config, config.trains_adapter, with_projection,
                       config.trains_lora)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr,
                                  eps=config.adam_epsilon)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup(processes, config.lr_warmup_steps))
    checkpoints.install_hooks(accelerator, module)
    resume_from, start = None, 0
    if config.resume:
        resume_from, start = checkpoints.newest(config.checkpoint_dir, settings)
    latents, cached = _latent_source(pipe, examples, config, accelerator)
    text = functools.lru_cache(maxsize=256)(lambda prompt: encode_prompts(pipe, [prompt])[0][0].detach().cpu())
    dataset = DrawDataset(examples, config.seed, module.timesteps, latents, text, _visual_source(adapter, encoder))
    per_step = config.batch_size * config.grad_accum * processes
    sampler = SeededDrawSampler(len(examples), config.seed, start * per_step, config.steps * per_step)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate_draws)
    model, optimizer, loader, schedule = accelerator.prepare(module, optimizer, loader, schedule)
    if resume_from is not None:
        checkpoints.load(accelerator, resume_from)
    if config.log_dir is not None and config.log_with != "none":
        accelerator.init_trackers("train-dpo", config={k: str(v) for k, v in settings.items()})
    result = TrainResult(module.adapter, None, start, config.steps, processes=processes, global_batch=per_step,
                         cached_latents=cached, is_main_process=accelerator.is_main_process)
    bar = tqdm(total=config.steps, initial=start, desc="train-dpo", file=sys.stderr, unit="step",
               disable=not progress or not accelerator.is_main_process)
    step, margins, started = start, [], time.perf_counter()
    with module.active():
        for batch in loader:
            with accelerator.accumulate(model):
                terms = diffusion_dpo_loss(*model(batch), config.beta)
                accelerator.backward(terms.loss)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
            margins.append(accelerator.gather(terms.margin.detach().float()))
            if not accelerator.sync_gradients:
                continue
            step += 1
            every = torch.cat(margins)
            margins = []
            loss = float(torch.nn.functional.softplus(-0.5 * config.beta * every).mean())
            accuracy, margin = float((every > 0).float().mean()), float(every.mean())
            result.losses.append(loss)
            result.accuracies.append(accuracy)
            result.margins.append(margin)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.2f}")
            if step % config.log_every == 0 or step == config.steps:
                accelerator.log({"loss": loss, "reward_accuracy": accuracy, "margin": margin,
                                 "lr": schedule.get_last_lr()[0]}, step=step)
                log.info("step %d/%d loss %.5f reward accuracy %.2f margin %.4g", step, config.steps, loss, accuracy,
                         margin)
            if on_step is not None:
                on_step(step, terms)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                checkpoints.save(accelerator, config.checkpoint_dir, step, settings)
    bar.close()
    done = step - start
    result.seconds_per_step = round((time.perf_counter() - started) / done, 6) if done else None
    accelerator.wait_for_everyone()
    if config.trains_adapter:
        result.adapter = copy.deepcopy(module.adapter).cpu().eval().requires_grad_(False)
    else:
        result.adapter = copy.deepcopy(adapter).float().eval()
    if config.trains_lora:
        result.lora = comfyui_lora_state(pipe.unet)
    return result
