"""Iterative Emotion Inference (EmoEditor), backend-agnostic: the caller passes a
``generate`` function and a critic; this module decides what to try next, judges
and picks.

Each pass:
1. the direction: target minus an emotion distribution (``settings.direction_from``):
   by default the one of the image being edited (the last kept candidate when
   chaining, else the source), or, as EmoEditor's test.py, the first pass's result's;
   each is the distribution the critic already gave that image, so no extra forward;
2. ``update_conditioning(direction)`` (if given) turns it into the backend's
   conditioning;
3. ``generate(seeds, denoise, state)`` makes ``candidates`` images as one batch, with
   denoise drawn on a 1/1000 grid from ``[denoise_low, denoise_high]`` by the loop's
   generator (``state.generator``: a backend that draws all of a run's randomness from
   one generator, as test.py does, continues from it);
4. the critic scores the batch in one call and SSIM to the source is measured
   (EmoEditor's SSIM, with the source's side computed once: ``ssim.EmoEditorSSIM``);
   each candidate is judged (``judge.judge``);
5. the best accepted candidate of the pass is kept and becomes the image to edit next.
The loop ends at the first confident candidate, after ``max_iterations`` passes, or
once ``keep_limit`` images are kept; the pick is ``settings.pick``'s. The source's
distribution is computed once. Everything is kept in local state and returned at the
end, so an interruption (``check_interrupt`` raising, or any exception from the
callbacks) leaves nothing half-built behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..direction import EmotionDirection, make_direction
from ..errors import InvalidInputError
from ..images import as_rgb_batch
from ..taxonomy import EMOTIONS, as_dict
from .judge import Judgement, judge, pick_best, pick_emoeditor
from .settings import DENOISE_QUANTUM, LoopSettings
from ..ssim import EmoEditorSSIM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidates:
    """What ``generate`` returns: IMAGE ``[N,H,W,C]`` and, if the backend has them, latents ``[N,...]``;
    ``denoise`` when the pass used another denoise than the drawn one (a text-to-image pass: 1), so
    the report says what was run."""

    images: torch.Tensor
    latents: Optional[torch.Tensor] = None
    denoise: Optional[float] = None


@dataclass(frozen=True)
class PassState:
    """What ``generate`` needs to know about the pass besides seeds and denoise."""

    iteration: int
    direction: EmotionDirection
    conditioning: Any  # update_conditioning(direction), or None
    base_index: Optional[int]  # candidate being edited, None = the source / initial latent
    base_image: Optional[torch.Tensor]  # its IMAGE [1,H,W,3] (the source, or None when generating)
    base_latent: Optional[torch.Tensor]  # its latent [1,...] when the backend returned latents
    generator: Optional[torch.Generator] = None  # the loop's; it drew this pass's denoise


Generate = Callable[[list, float, PassState], Candidates]
Critic = Callable[[torch.Tensor], torch.Tensor]
Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LoopResult:
    best_index: Optional[int]  # None: the pick is the source (``pick="emoeditor"``, nothing accepted)
    images: torch.Tensor  # every candidate, in order
    latents: Optional[torch.Tensor]
    judgements: list[Judgement]
    report: dict = field(repr=False)
    source: Optional[torch.Tensor] = None  # the source IMAGE [1,H,W,3], when editing

    @property
    def best_image(self) -> torch.Tensor:
        if self.best_index is None:
            return self.source
        return self.images[self.best_index : self.best_index + 1]

    @property
    def best_latent(self) -> Optional[torch.Tensor]:
        """The pick's latent; None when the backend returned none or the pick is the source."""
        if self.latents is None or self.best_index is None:
            return None
        return self.latents[self.best_index : self.best_index + 1]


def draw_denoise(generator: torch.Generator, settings: LoopSettings) -> float:
    low = round(settings.denoise_low * DENOISE_QUANTUM)
    high = round(settings.denoise_high * DENOISE_QUANTUM)
    return int(torch.randint(low, high + 1, (1,), generator=generator)) / DENOISE_QUANTUM


def _distributions(critic: Critic, images: torch.Tensor, count: int) -> torch.Tensor:
    scores = torch.as_tensor(critic(images)).detach().float().cpu()
    if scores.shape != (count, 8):
        raise InvalidInputError(f"the critic returned shape {tuple(scores.shape)} for {count} images; expected [{count}, 8]")
    return scores


def _check_candidates(candidates: Candidates, count: int, size: Optional[tuple]) -> torch.Tensor:
    if not isinstance(candidates, Candidates):
        raise TypeError(f"generate must return Candidates, got {type(candidates).__name__}")
    images = as_rgb_batch(candidates.images.detach(), "generated candidates")
    if images.shape[0] != count:
        raise InvalidInputError(f"generate returned {images.shape[0]} images for {count} seeds")
    if size is not None and tuple(images.shape[1:3]) != size:
        raise InvalidInputError(f"generate returned {images.shape[1]}x{images.shape[2]} images, expected {size[0]}x{size[1]}")
    if candidates.latents is not None and candidates.latents.shape[0] != count:
        raise InvalidInputError(f"generate returned {candidates.latents.shape[0]} latents for {count} seeds")
    if candidates.denoise is not None and not 0.0 < candidates.denoise <= 1.0:
        raise InvalidInputError(f"generate reported denoise {candidates.denoise}; expected a value in (0, 1]")
    return images


def run_critic_loop(
    generate: Generate,
    critic: Critic,
    target: str | EmotionDirection,
    settings: LoopSettings,
    source: Optional[torch.Tensor] = None,
    source_distribution: Optional[torch.Tensor] = None,
    update_conditioning: Optional[Callable[[EmotionDirection], Any]] = None,
    check_interrupt: Optional[Callable[[], None]] = None,
    on_pass: Optional[Callable[[dict], None]] = None,
    similarity: Optional[Similarity] = None,
) -> LoopResult:
    """Run the loop (see module docstring). ``critic(images) -> [N,8]`` canonical-order probabilities;
    ``source`` is the IMAGE being edited (None: generation, no SSIM); ``similarity(source, images) -> [N]``
    defaults to EmoEditor's SSIM (224 px grayscale, 51 px window), the one its [0.5, 0.8] window is for."""
    direction0 = target if isinstance(target, EmotionDirection) else make_direction(target)
    direction0 = EmotionDirection(direction0.target, direction0.strength, None)
    target_name = direction0.primary
    check = check_interrupt or (lambda: None)
    if source is not None:
        source = as_rgb_batch(source, "source image")[:1]
        if source_distribution is None:
            source_distribution = _distributions(critic, source, 1)[0]
        if similarity is None:
            similarity = EmoEditorSSIM(source)
    size = None if source is None else tuple(source.shape[1:3])
    generator = torch.Generator().manual_seed(settings.seed)

    judgements: list[Judgement] = []
    images: list[torch.Tensor] = []
    latents: list[torch.Tensor] = []
    iterations: list[dict] = []
    kept: list[int] = []  # the candidate kept by each pass that had an accepted one
    base_index: Optional[int] = None
    source_estimate = None if source_distribution is None else torch.as_tensor(source_distribution).float()
    direction_estimate = source_estimate
    verdicts: list[Judgement] = []
    stopped = "max_iterations"
    for iteration in range(settings.max_iterations):
        check()
        direction = direction0 if direction_estimate is None else direction0.with_source(direction_estimate)
        conditioning = None if update_conditioning is None else update_conditioning(direction)
        denoise = draw_denoise(generator, settings)
        seeds = settings.seeds(iteration)
        state = PassState(
            iteration, direction, conditioning, base_index,
            source if base_index is None else images[base_index][None],
            None if base_index is None or not latents else latents[base_index][None],
            generator,
        )
        candidates = generate(seeds, denoise, state)
        check()
        batch = _check_candidates(candidates, len(seeds), size)
        denoise = denoise if candidates.denoise is None else float(candidates.denoise)
        size = tuple(batch.shape[1:3])
        distributions = _distributions(critic, batch, len(seeds))
        ssims = None if source is None else [float(x) for x in similarity(source, batch)]
        first = len(images)
        verdicts = [
            judge(first + k, iteration, seed, denoise, None if ssims is None else ssims[k], distributions[k].tolist(),
                  target_name, settings)
            for k, seed in enumerate(seeds)
        ]
        judgements.extend(verdicts)
        images.extend(batch)
        if candidates.latents is not None:
            latents.extend(candidates.latents.detach())
        entry = {"iteration": iteration, "denoise": denoise, "base": base_index,
                 "direction": as_dict(direction.scaled().tolist()),
                 "candidates": [v.to_json() for v in verdicts]}
        iterations.append(entry)
        log.info("pass %d/%d (denoise %.3f): %s", iteration + 1, settings.max_iterations, denoise,
                 "; ".join(v.why for v in verdicts))
        if on_pass is not None:
            on_pass(entry)
        if settings.direction_from == "first_edit" and iteration == 0:
            direction_estimate = torch.tensor(_first_max_target(verdicts).distribution)
        accepted = [v for v in verdicts if v.accepted]
        if accepted:
            chosen = _first_max_target(accepted)
            kept.append(chosen.index)
            if any(v.confident for v in accepted):
                stopped = "confident"
                break
            if settings.chain:
                base_index = chosen.index
                if settings.direction_from == "edited":
                    direction_estimate = torch.tensor(chosen.distribution)
        if settings.keep_limit is not None and len(kept) + (source is not None) >= settings.keep_limit:
            stopped = "keep_limit"
            break

    if settings.pick == "emoeditor":
        best, why = pick_emoeditor(judgements, kept, verdicts)
    else:
        best, why = pick_best(judgements)
    if best is None:
        best_entry = _source_entry(source, source_estimate, target_name)
    else:
        best_entry = {**best.to_json(), "iteration": best.iteration}
    report = {
        "target": target_name,
        "targets": dict(direction0.target),
        "settings": settings.to_json(),
        "source": None if source_distribution is None else as_dict(torch.as_tensor(source_distribution).tolist()),
        "iterations": iterations,
        "passes": len(iterations),
        "stopped": stopped,
        "kept": kept,
        "best": {**best_entry, "pick": why},
    }
    stacked_latents = torch.stack(latents) if latents and len(latents) == len(images) else None
    return LoopResult(None if best is None else best.index, torch.stack(images), stacked_latents, judgements, report,
                      source)


def _first_max_target(verdicts: list[Judgement]) -> Judgement:
    """The candidate with the highest target probability; ties go to the earlier one."""
    return max(verdicts, key=lambda v: (v.target_probability, -v.index))


def _source_entry(source: Optional[torch.Tensor], distribution: Optional[torch.Tensor], target: str) -> dict:
    """The report's ``best`` entry when the pick is the source (unchanged: denoise 0, SSIM 1)."""
    if source is None:
        raise ValueError("the pick is the source, but the loop had none")
    values = distribution.tolist()
    return {"index": None, "iteration": None, "seed": None, "denoise": 0.0, "ssim": 1.0,
            "distribution": as_dict(values), "top": EMOTIONS[max(range(len(EMOTIONS)), key=lambda i: values[i])],
            "target_probability": values[EMOTIONS.index(target)], "accepted": False, "confident": False,
            "why": "the source image, unchanged", "source": True}
