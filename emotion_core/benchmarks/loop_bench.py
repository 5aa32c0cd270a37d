"""``bench loop``: what the Emotion Critic Loop itself costs, and how many model
evaluations it spends against EmoEditor's procedure for the same outcome.

- Run: ``--iterations`` passes (default 5) of ``run_critic_loop`` editing a 512 px
  source, one candidate per pass, no CFG (EmoEditor's setting). The pass outcomes
  are scripted: every pass but the last is accepted without confidence, the last
  is confident, so both procedures stop after the same passes.
- Models (random weights, real compute): sampling = a 4-layer conv denoiser at
  SD1.5's latent size (64x64x4) called once per step; VAE decode = a conv
  upsampler to 512 px; critic = EmoEditor's ResNet-18 at 224 px. Their time is
  measured inside the callbacks; everything else (direction update, denoise draw,
  EmoEditor SSIM against the source, judging, bookkeeping, report) is the loop's
  overhead. ``overhead_fraction`` = overhead / total, median over ``--repeats``
  runs. Target < 0.05.
- ``model_evaluations``: denoiser calls of this loop (``steps`` is the full
  schedule; a pass at denoise d runs round(steps*d) of them).
  ``paper_model_evaluations``: EmoEditor's fixed 30 steps per pass over the same
  passes (its steps are spread over the truncated schedule, so every pass costs 30).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

log = logging.getLogger(__name__)

OVERHEAD_TARGET = 0.05
PAPER_STEPS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=5, help="passes per run (default 5)")
    parser.add_argument("--steps", type=int, default=30, help="full-schedule steps of this loop (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, source and the run (default 0)")


def _models(seed: int):
    import torch
    from torch import nn

    from ..critics.resnet_predictor import build_resnet18

    torch.manual_seed(seed)
    denoiser = nn.Sequential(nn.Conv2d(4, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(),
                             nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 4, 3, padding=1)).eval()
    decoder = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(4, 32, 3, padding=1), nn.SiLU(),
                            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.SiLU(),
                            nn.Upsample(scale_factor=2), nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid()).eval()
    return denoiser, decoder, build_resnet18().eval()


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..critic_loop import Candidates, LoopSettings, pass_steps, run_critic_loop
    from ..ssim import EmoEditorSSIM
    from ..critics.resnet_predictor import EmoEditorResNetCritic
    from ..errors import InvalidInputError
    from ..taxonomy import EMOTIONS

    if args.iterations < 1 or args.steps < 1 or args.repeats < 1:
        raise InvalidInputError("--iterations, --steps and --repeats must be at least 1")
    denoiser, decoder, resnet = _models(args.seed)
    critic = EmoEditorResNetCritic(resnet)
    source = torch.rand(1, 512, 512, 3, generator=torch.Generator().manual_seed(args.seed))
    settings = LoopSettings(max_iterations=args.iterations, seed=args.seed, rule="and")
    awe = EMOTIONS.index("awe")

    def scripted(passes_done: int) -> list[float]:
        confident = passes_done == args.iterations - 1
        p = 0.7 if confident else 0.45
        rest = (1.0 - p) / 7
        return [p if i == awe else rest for i in range(8)]

    def one_run() -> dict:
        timing = {"model": 0.0, "evaluations": 0, "passes": 0}
        measure = EmoEditorSSIM(source)

        @torch.no_grad()
        def generate(seeds, denoise, state):
            start = time.perf_counter()
            schedule, first = pass_steps(args.steps, denoise, spread=False)
            x = torch.randn(len(seeds), 4, 64, 64, generator=torch.Generator().manual_seed(seeds[0]))
            for _ in range(schedule - first):
                x = x - 0.1 * denoiser(x)
                timing["evaluations"] += len(seeds)
            images = decoder(x).permute(0, 2, 3, 1).contiguous()
            timing["model"] += time.perf_counter() - start
            return Candidates(images, x)

        def judge_critic(images):
            start = time.perf_counter()
            critic.predict(images)  # the real forward, timed as model time
            timing["model"] += time.perf_counter() - start
            if images.shape[1:3] == source.shape[1:3] and torch.equal(images, source):
                return torch.full((1, 8), 1.0 / 8)
            timing["passes"] += 1
            return torch.tensor([scripted(timing["passes"] - 1)] * images.shape[0])

        def similarity(src, images):
            measure(src, images)  # the real SSIM, counted as loop overhead
            return torch.full((images.shape[0],), 0.65)

        start = time.perf_counter()
        result = run_critic_loop(generate, judge_critic, "awe", settings, source=source, similarity=similarity)
        total = time.perf_counter() - start
        return {"total": total, "model": timing["model"], "evaluations": timing["evaluations"],
                "passes": result.report["passes"], "stopped": result.report["stopped"]}

    one_run()  # warm-up
    runs = []
    for repeat in range(args.repeats):
        runs.append(one_run())
        log.info("run %d: total %.3f s, models %.3f s", repeat + 1, runs[-1]["total"], runs[-1]["model"])
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
        "denoise_range": [settings.denoise_low, settings.denoise_high],
        "torch_threads": torch.get_num_threads(),
    }
