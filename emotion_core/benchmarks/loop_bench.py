"""``bench loop``: what the Emotion Critic Loop itself costs, and how many model evaluations
it spends against EmoEditor's procedure under the same acceptance settings.

- Run: ``run_critic_loop`` editing a 512 px source toward awe, one candidate per pass, with
  the real critic and the real SSIM: EmoEditor's ResNet-18 predictor from the test critic
  file (``testing.critic_assets``, random weights, loaded by ``critics.load_critic``) and the
  loop's own EmoEditor SSIM. Nothing is scripted: which passes are accepted and when the run
  stops follow from the images.
- Editing model (random weights, real compute): the image being edited is encoded to a
  64x64x4 latent, noised to the pass's denoise, denoised by a 4-layer conv network called once
  per step, and decoded to 512 px; the result keeps (1 - 0.75 denoise) of the edited image, as a
  partial re-noising does, and takes one signed step up the critic's gradient for the target
  (so passes move toward it, harder at a higher denoise). The critic's forward and backward and
  these models are model time; everything
  else (direction update, denoise draw, SSIM, judging, bookkeeping, report) is the loop's
  overhead. ``overhead_fraction`` = overhead / total CPU time, median over ``--repeats``
  runs. Target < 0.03.
- Evaluations: ``model_evaluations`` are denoiser calls of this loop with its defaults
  (``--steps`` is the full schedule; a pass at denoise d runs round(steps*d) of them);
  ``paper_model_evaluations`` = EmoEditor's fixed 30 steps over the same number of passes (the
  old figure). The fair comparison runs both procedures with EmoEditor's acceptance settings
  (SSIM window, confidence, rule) and the same steps per pass (``--steps``, spread over the
  truncated schedule as EmoEditor does): ``equal_steps_model_evaluations`` (this loop) against
  ``emoeditor_model_evaluations`` (the EmoEditor preset: test.py's loop), each with its passes
  and why it stopped.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from .timing import CLOCKS, add_timing_arguments, check_timing_arguments, pinned_threads

log = logging.getLogger(__name__)

OVERHEAD_TARGET = 0.03
TARGET = "awe"
PAPER_STEPS = 30
SIDE, LATENT = 512, 64
MIX, NUDGE = 0.75, 0.1  # share of the decoded image in an edit at denoise 1; critic-gradient step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=5, help="hard cap on passes per run (default 5)")
    parser.add_argument("--steps", type=int, default=30, help="steps of a pass (full schedule; default 30)")
    add_timing_arguments(parser, repeats=3)
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, source and the run (default 0)")


def _models(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                            nn.SiLU(), nn.Conv2d(32, 4, 3, stride=2, padding=1)).eval()
    denoiser = nn.Sequential(nn.Conv2d(4, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(),
                             nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 4, 3, padding=1)).eval()
    decoder = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(4, 32, 3, padding=1), nn.SiLU(),
                            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.SiLU(),
                            nn.Upsample(scale_factor=2), nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid()).eval()
    return encoder, denoiser, decoder


def _critic(folder: Path, seed: int):
    from ..critics.loader import load_critic
    from ..testing.critic_assets import write_test_critics

    names = {role: f"{role}.safetensors" for role in
             ("critic_clip_b32", "critic_clip_l14", "critic_emogen", "critic_emoedit", "critic_emoeditor")}
    return load_critic(write_test_critics(folder, names, seed)["critic_emoeditor"])


def _one_run(models, critic, source, settings, steps: int, spread: bool, clock) -> dict:
    import torch

    from ..critic_loop import Candidates, pass_steps, run_critic_loop
    from ..taxonomy import EMOTIONS

    encoder, denoiser, decoder = models
    target = EMOTIONS.index(TARGET)
    timing = {"model": 0.0, "evaluations": 0}

    @torch.no_grad()
    def generate(seeds, denoise, state):
        start = clock()
        base = state.base_image if state.base_image is not None else source
        schedule, first = pass_steps(steps, denoise, spread=spread)
        noise = torch.randn(len(seeds), 4, LATENT, LATENT, generator=torch.Generator().manual_seed(seeds[0]))
        x = encoder(base.permute(0, 3, 1, 2)) * (1 - denoise) + noise * denoise
        for _ in range(schedule - first):
            x = x - 0.1 * denoiser(x)
            timing["evaluations"] += len(seeds)
        edited = decoder(x).permute(0, 2, 3, 1)
        images = (base * (1 - MIX * denoise) + edited * MIX * denoise).clamp(0, 1)
        with torch.enable_grad():  # the edit moves toward the target: one step up the critic's gradient
            pixels = images.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(critic(pixels)[:, target].sum(), pixels)
        images = (images + NUDGE * denoise * gradient.sign()).clamp(0, 1).contiguous()
        timing["model"] += clock() - start
        return Candidates(images, x)

    def judge(images):
        start = clock()
        out = critic.predict(images)
        timing["model"] += clock() - start
        return out

    start = clock()
    result = run_critic_loop(generate, judge, TARGET, settings, source=source)
    total = clock() - start
    return {"total": total, "model": timing["model"], "evaluations": timing["evaluations"],
            "passes": result.report["passes"], "stopped": result.report["stopped"]}


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..critic_loop import LoopSettings
    from ..critic_loop.presets import emoeditor_settings
    from ..errors import InvalidInputError

    check_timing_arguments(args)
    if args.iterations < 1 or args.steps < 1:
        raise InvalidInputError("--iterations, --steps and --repeats must be at least 1")
    clock = CLOCKS[args.clock]
    with pinned_threads(args.threads), tempfile.TemporaryDirectory(prefix="bench_loop_") as folder:
        models = _models(args.seed)
        critic = _critic(Path(folder), args.seed)
        source = torch.rand(1, SIDE, SIDE, 3, generator=torch.Generator().manual_seed(args.seed))
        ours = LoopSettings(max_iterations=args.iterations, seed=args.seed)
        emoeditor = emoeditor_settings(args.seed, max_iterations=args.iterations)
        # this loop with EmoEditor's acceptance: the same window, confidence, rule and open window
        ours_equal = LoopSettings(max_iterations=args.iterations, seed=args.seed, ssim_low=emoeditor.ssim_low,
                                  ssim_high=emoeditor.ssim_high, confidence=emoeditor.confidence,
                                  rule=emoeditor.rule, ssim_open=emoeditor.ssim_open)
        _one_run(models, critic, source, ours, args.steps, False, clock)  # warm-up
        runs = []
        for repeat in range(args.repeats):
            runs.append(_one_run(models, critic, source, ours, args.steps, False, clock))
            log.info("run %d: total %.3f s, models %.3f s", repeat + 1, runs[-1]["total"], runs[-1]["model"])
        equal = _one_run(models, critic, source, ours_equal, args.steps, True, clock)
        paper = _one_run(models, critic, source, emoeditor, args.steps, True, clock)
    fractions = [(r["total"] - r["model"]) / r["total"] for r in runs]
    passes = runs[0]["passes"]
    return {
        "benchmark": "loop",
        "overhead_fraction": round(statistics.median(fractions), 4),
        "overhead_target": OVERHEAD_TARGET,
        "overhead_seconds_per_pass": round(statistics.median(r["total"] - r["model"] for r in runs) / passes, 4),
        "total_seconds": round(statistics.median(r["total"] for r in runs), 3),
        "passes": passes,
        "stopped": runs[0]["stopped"],
        "model_evaluations": runs[0]["evaluations"],
        "paper_model_evaluations": PAPER_STEPS * passes,
        "steps": args.steps,
        "denoise_range": [ours.denoise_low, ours.denoise_high],
        "equal_steps_model_evaluations": equal["evaluations"],
        "equal_steps_passes": equal["passes"],
        "equal_steps_stopped": equal["stopped"],
        "emoeditor_model_evaluations": paper["evaluations"],
        "emoeditor_passes": paper["passes"],
        "emoeditor_stopped": paper["stopped"],
        "acceptance": {"ssim": [emoeditor.ssim_low, emoeditor.ssim_high], "confidence": emoeditor.confidence,
                       "rule": emoeditor.rule, "ssim_open": emoeditor.ssim_open},
        "critic": "EmoEditor ResNet-18 (test weights)",
        "torch_threads": args.threads,
        "clock": args.clock,
        "within_target": statistics.median(fractions) < OVERHEAD_TARGET,
    }
