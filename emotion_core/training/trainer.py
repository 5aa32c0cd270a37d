"""The negative-visual Diffusion-DPO training loop on HuggingFace ``accelerate``.

Only the adapter trains: the per-layer image key/value projections, and the image
projection when visual prompts come from images. The UNet, VAE and text encoder are
frozen; the reference is a frozen copy of the adapter as loaded.

Reproducible and resumable: everything random in optimizer step ``s`` (which pairs,
timesteps, noise) comes from a generator seeded by (seed, s, micro-batch, process), so a
run resumed from a checkpoint (adapter + optimizer state + step) takes exactly the same
steps as an uninterrupted one. With several processes (``accelerate launch``) each takes
its own pairs and the gradients are averaged before the optimizer step.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..atomic import temp_beside
from ..errors import InvalidInputError, UnsafeCheckpointError
from ..visual_prompt import NEGATIVE_VISUAL, POSITIVE, ImagePromptAttention, VisualPromptAdapter, check_sites
from ..visual_prompt.diffusers_unet import diffusers_attn2_sites, patched
from .data import Example, as_image, load_square
from .dpo import DPOTerms, diffusion_dpo_loss, per_sample_error
from .injection import LOSER_INDEX, WINNER_INDEX, TrainableInjection

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    beta: float = 5000.0
    lr: float = 1e-5
    batch_size: int = 1  # pairs per optimizer step and process (gradient accumulation)
    resolution: int = 512
    seed: int = 0
    checkpoint_every: int = 0  # 0: no intermediate checkpoints
    checkpoint_dir: Path | None = None
    resume: bool = False
    log_every: int = 10

    def check(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 0 or self.log_every < 1:
            raise InvalidInputError("steps and batch size must be >= 1, checkpoint interval >= 0")
        if not self.beta > 0 or not self.lr > 0:
            raise InvalidInputError(f"beta and lr must be > 0, got beta {self.beta}, lr {self.lr}")
        if self.resolution < 8 or self.resolution % 8:
            raise InvalidInputError(f"resolution must be a positive multiple of 8, got {self.resolution}")
        if (self.checkpoint_every or self.resume) and self.checkpoint_dir is None:
            raise InvalidInputError("checkpoints need a checkpoint folder")


@dataclass
class TrainResult:
    adapter: VisualPromptAdapter
    start_step: int
    steps: int
    losses: list[float] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)


def _fingerprint(module: torch.nn.Module) -> float:
    """A cheap checksum of a module's weights, to refuse resuming against another adapter."""
    return float(sum(p.double().sum() + p.double().abs().sum() for p in module.state_dict().values()))


class DPOModel:
    """The frozen pipeline, the trained adapter and the reference, with the patches installed
    on the UNet while ``active()``."""

    def __init__(self, pipe, adapter: VisualPromptAdapter, image_encoder=None, device: torch.device | str = "cpu"):
        from diffusers import DDPMScheduler

        self.pipe, self.encoder, self.device = pipe, image_encoder, torch.device(device)
        check_sites(adapter, diffusers_attn2_sites(pipe.unet))
        self.reference = copy.deepcopy(adapter).float().to(self.device).eval().requires_grad_(False)
        self.adapter = copy.deepcopy(adapter).float().to(self.device).train().requires_grad_(True)
        self.injection = TrainableInjection(self.adapter)
        self.patches = [ImagePromptAttention(self.injection, i) for i in range(len(adapter.ip_adapter))]
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.alphas = self.noise_scheduler.alphas_cumprod.to(self.device)

    def parameters(self, with_projection: bool) -> list[torch.nn.Parameter]:
        params = list(self.adapter.ip_adapter.parameters())
        if with_projection:
            params += list(self.adapter.image_proj.parameters())
        else:
            self.adapter.image_proj.requires_grad_(False)
        return params

    def _tokens(self, source, adapter: VisualPromptAdapter) -> torch.Tensor:
        if source.tokens is not None:
            return source.tokens.to(self.device)
        pixels = torch.cat([load_square(path, self.encoder.image_size) for path in source.images])
        features = self.encoder.features(as_image(pixels), adapter.layout.feature_name).to(self.device)
        tokens = adapter.image_proj(features)
        return tokens.reshape(-1, tokens.shape[-1])

    @torch.no_grad()
    def _latents(self, path, resolution: int) -> torch.Tensor:
        from ..pipeline import encode_image

        return encode_image(self.pipe, as_image(load_square(path, resolution))).to(self.device)

    @torch.no_grad()
    def _text(self, prompt: str) -> torch.Tensor:
        from ..pipeline import encode_prompts

        return encode_prompts(self.pipe, [prompt])[0].to(self.device)

    def errors(self, example: Example, generator: torch.Generator, resolution: int, options: dict,
               with_reference: bool = True) -> tuple[torch.Tensor, ...]:
        """Per-sample errors (trained w, trained l[, reference w, reference l]) on one pair,
        both images noised with the same ε at the same timestep."""
        pair = example.pair
        latents = torch.cat([self._latents(pair.chosen, resolution), self._latents(pair.rejected, resolution)])
        if latents.shape[0] != 2:
            raise InvalidInputError(f"pair {pair.id}: expected one image each for chosen and rejected")
        steps = self.noise_scheduler.config.num_train_timesteps
        timestep = torch.randint(0, steps, (1,), generator=generator).to(self.device)
        noise = torch.randn(latents.shape[1:], generator=generator).to(self.device).expand_as(latents)
        noisy = self.noise_scheduler.add_noise(latents, noise, timestep.expand(2))
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timestep.expand(2))
        else:
            target = noise
        text = self._text(pair.prompt).expand(2, -1, -1)
        options["cond_or_uncond"] = [WINNER_INDEX, LOSER_INDEX]
        sigma = ((1 - self.alphas[timestep]) / self.alphas[timestep]).sqrt()
        options["sigmas"] = sigma.expand(2)

        def run(adapter: VisualPromptAdapter) -> torch.Tensor:
            self.injection.adapter = adapter
            self.injection.tokens = {POSITIVE: self._tokens(example.positive, adapter),
                                     NEGATIVE_VISUAL: self._tokens(example.negative, adapter)}
            prediction = self.pipe.unet(noisy, timestep.expand(2), encoder_hidden_states=text).sample
            return per_sample_error(prediction, target)

        model = run(self.adapter)
        if not with_reference:
            return tuple(model)
        with torch.no_grad():
            reference = run(self.reference)
        self.injection.adapter = self.adapter
        return (*model, *reference)

    def active(self):
        return patched(self.pipe.unet, self.patches)

    @torch.no_grad()
    def margin(self, examples: Sequence[Example], seed: int, resolution: int, samples: int = 4) -> float:
        """Mean preference margin over every pair with ``samples`` fixed noise draws each
        (the same draws every time it is called with the same seed)."""
        total, count = 0.0, 0
        with self.active() as options:
            for index, example in enumerate(examples):
                for draw in range(samples):
                    generator = torch.Generator().manual_seed(_seed(seed, "eval", index, draw))
                    w, l, ref_w, ref_l = self.errors(example, generator, resolution, options)
                    total += float((ref_w - ref_l) - (w - l))
                    count += 1
        return total / max(count, 1)


def _seed(*parts) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{CHECKPOINT_PREFIX}*.pt")) if folder.is_dir() else []


def _save_checkpoint(folder: Path, step: int, model: DPOModel, optimizer, config: TrainConfig) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{CHECKPOINT_PREFIX}{step:08d}.pt"
    state = {"step": step, "adapter": model.adapter.state_dict(), "optimizer": optimizer.state_dict(),
             "reference_fingerprint": _fingerprint(model.reference), "seed": config.seed, "beta": config.beta,
             "batch_size": config.batch_size, "resolution": config.resolution}
    with temp_beside(path) as tmp:
        torch.save(state, tmp)
        os.replace(tmp, path)
    for old in _checkpoints(folder)[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def _resume(folder: Path, model: DPOModel, optimizer, config: TrainConfig) -> int:
    found = _checkpoints(folder)
    if not found:
        log.warning("--resume: no checkpoint in %s, starting at step 0", folder)
        return 0
    path = found[-1]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # not a tensor checkpoint: loading it would run code from the file
        raise UnsafeCheckpointError(f"{path}: needs full pickle to load, which can run arbitrary code; it was "
                                    "refused (delete it to start again)") from exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path}: unreadable checkpoint ({exc})") from exc
    if abs(state["reference_fingerprint"] - _fingerprint(model.reference)) > 1e-6 * max(1.0, abs(
            state["reference_fingerprint"])):
        raise InvalidInputError(f"{path} was trained from another --adapter; resume with the same adapter")
    for key in ("seed", "beta", "batch_size", "resolution"):
        if state[key] != getattr(config, key):
            raise InvalidInputError(f"{path} was trained with {key}={state[key]}, not {getattr(config, key)}; "
                                    "resume with the same settings")
    model.adapter.load_state_dict(state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("resumed from %s at step %d", path.name, state["step"])
    return int(state["step"])


def train_dpo(pipe, adapter: VisualPromptAdapter, examples: Sequence[Example], config: TrainConfig,
              image_encoder=None, progress: bool = True,
              on_step: Callable[[int, DPOTerms], None] | None = None) -> TrainResult:
    """Train a copy of ``adapter``; returns it (float32, CPU) with the loss/margin history."""
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise InvalidInputError("train-dpo runs on HuggingFace accelerate, which is not installed: "
                                "pip install 'emotion-director[train]'") from exc
    from tqdm.auto import tqdm

    config.check()
    if not examples:
        raise InvalidInputError("no usable preference pairs to train on")
    needs_encoder = any(e.needs_encoder for e in examples)
    if needs_encoder and image_encoder is None:
        raise InvalidInputError("some visual prompts are images (or missing, so the pair's own images are used); "
                                "they need a CLIP vision image encoder (the base model's image_encoder/ folder)")
    accelerator = Accelerator()
    device = accelerator.device
    pipe.to(device)
    if image_encoder is not None:
        image_encoder.model.to(device)
    model = DPOModel(pipe, adapter, image_encoder, device)
    params = model.parameters(with_projection=needs_encoder)
    optimizer = accelerator.prepare(torch.optim.AdamW(params, lr=config.lr))
    start = _resume(config.checkpoint_dir, model, optimizer, config) if config.resume else 0
    result = TrainResult(model.adapter, start, config.steps)
    rank, processes = accelerator.process_index, accelerator.num_processes
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="train-dpo", file=sys.stderr,
               disable=not progress or not accelerator.is_main_process)
    with model.active() as options:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            losses, margins = [], []
            for micro in range(config.batch_size):
                generator = torch.Generator().manual_seed(_seed(config.seed, step, micro, rank))
                example = examples[int(torch.randint(len(examples), (1,), generator=generator))]
                w, l, ref_w, ref_l = model.errors(example, generator, config.resolution, options)
                terms = diffusion_dpo_loss(w, l, ref_w, ref_l, config.beta)
                accelerator.backward(terms.loss / config.batch_size)
                losses.append(float(terms.loss.detach()))
                margins.append(float(terms.margin.mean()))
            if processes > 1:
                for p in params:
                    if p.grad is not None:
                        p.grad = accelerator.reduce(p.grad, reduction="mean")
            optimizer.step()
            loss, margin = sum(losses) / len(losses), sum(margins) / len(margins)
            result.losses.append(loss)
            result.margins.append(margin)
            bar.set_postfix(loss=f"{loss:.4f}", margin=f"{margin:.3g}")
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                window = result.losses[-config.log_every:]
                log.info("step %d/%d loss %.5f (mean of last %d) margin %.4g", done, config.steps,
                         sum(window) / len(window), len(window), margin)
            if on_step is not None:
                on_step(done, terms)
            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _save_checkpoint(config.checkpoint_dir, done, model, optimizer, config)
    bar.close()
    result.adapter = model.adapter.cpu().eval().requires_grad_(False)
    return result
