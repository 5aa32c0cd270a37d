"""What ``edit`` and ``generate --critic-loop`` share: the Emotion Critic Loop's options and
their check, the loop run on the diffusers pipeline (one batched ``sample`` per pass), and
the report file, so both commands judge, steer and write alike."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from ..atomic import temp_beside
from .arguments import refuse_existing

# command-line destination -> LoopSettings field (whose default is the option's default)
LOOP_FIELDS = {
    "denoise_min": "denoise_low", "denoise_max": "denoise_high", "ssim_min": "ssim_low", "ssim_max": "ssim_high",
    "confidence": "confidence", "rule": "rule", "max_iterations": "max_iterations", "candidates": "candidates",
}


def _number(text: str) -> float:
    """A number; its range is checked by ``LoopSettings`` with the other settings."""
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from exc


def add_loop_arguments(parser: argparse.ArgumentParser, critic_required: bool) -> None:
    """``--critic``, ``--report`` and the loop's settings (defaults: ``LoopSettings``)."""
    from ..critic_loop.settings import RULES, LoopSettings

    default = LoopSettings()
    parser.add_argument("--critic", required=critic_required, metavar="FILE", help="emotion critic file")
    parser.add_argument("--report", metavar="JSON", help="also write the full per-pass report here")
    parser.add_argument("--denoise-min", type=_number, metavar="D", default=default.denoise_low,
                        help=f"lowest denoise drawn per pass (default {default.denoise_low})")
    parser.add_argument("--denoise-max", type=_number, metavar="D", default=default.denoise_high,
                        help=f"highest denoise drawn per pass (default {default.denoise_high})")
    parser.add_argument("--ssim-min", type=_number, metavar="S", default=default.ssim_low,
                        help=f"SSIM-to-source window low end (default {default.ssim_low})")
    parser.add_argument("--ssim-max", type=_number, metavar="S", default=default.ssim_high,
                        help=f"SSIM-to-source window high end (default {default.ssim_high})")
    parser.add_argument("--confidence", type=_number, metavar="P", default=default.confidence,
                        help=f"stop at this target probability (default {default.confidence})")
    parser.add_argument("--rule", choices=RULES, default=default.rule,
                        help=f"acceptance rule (default {default.rule})")
    parser.add_argument("--max-iterations", type=int, metavar="N", default=default.max_iterations,
                        help=f"hard cap on passes (default {default.max_iterations})")
    parser.add_argument("--candidates", type=int, metavar="N", default=default.candidates,
                        help=f"candidates per pass, one batch (default {default.candidates})")


def loop_settings(args: argparse.Namespace):
    """The checked ``LoopSettings`` of the command line (seeded by ``--seed``)."""
    from ..critic_loop import LoopSettings

    return LoopSettings(**{field: getattr(args, dest) for dest, field in LOOP_FIELDS.items()}, seed=args.seed)


def loop_options_given(args: argparse.Namespace) -> list[str]:
    """The loop flags set to something other than their default (for commands where the loop is optional)."""
    from ..critic_loop import LoopSettings

    default = LoopSettings()
    given = [f"--{dest}" for dest in ("critic", "report") if getattr(args, dest) is not None]
    given += [f"--{dest.replace('_', '-')}" for dest, field in LOOP_FIELDS.items()
              if getattr(args, dest) != getattr(default, field)]
    return given


def run_pipeline_loop(pipe, critic, target, settings, *, positive, branches: Callable[[object], list], guidance,
                      steps: int, width: int, height: int, source=None, sample_options: dict | None = None):
    """Run the loop on ``pipe``; returns the ``LoopResult``.

    Each pass steers ``positive`` (the prompt's embeddings) along the re-estimated direction
    (the Emotion Conditioning formula) and samples ``branches(steered)`` with ``guidance``.
    The image a pass starts from: the last accepted candidate's latents when chaining, else
    ``source`` (IMAGE, VAE-encoded once), both re-noised to the drawn denoise; with neither
    (text-to-image, until a candidate is accepted) a pass is plain text-to-image at denoise 1
    and only the emotion is judged. ``steps`` is the full schedule: a pass at denoise d runs
    int(steps * d) steps."""
    from tqdm import tqdm

    from ..critic_loop import Candidates, run_critic_loop
    from ..pipeline import encode_image, sample
    from .generate import steer_prompt

    source_latents = None if source is None else encode_image(pipe, source)
    bar = tqdm(total=settings.max_iterations, desc="passes", file=sys.stderr, leave=False)

    def generate(seeds, denoise, state):
        init = source_latents if state.base_latent is None else state.base_latent
        used = 1.0 if init is None else denoise
        result = sample(pipe, branches(state.conditioning), guidance, seed=seeds[0], steps=steps, width=width,
                        height=height, batch=len(seeds), denoise=used, progress=False, init_latents=init,
                        **(sample_options or {}))
        bar.update(1)
        return Candidates(result.images, result.latents, denoise=used)

    try:
        return run_critic_loop(generate, critic.predict, target, settings, source=source,
                               update_conditioning=lambda direction: steer_prompt(pipe, positive, direction))
    finally:
        bar.close()


def loop_summary(result, critic: str) -> dict:
    """The outcome for PNG metadata and ``--json``: the critic's file name (never a path), the
    passes run, why the loop stopped, and the best candidate's scores."""
    report, best = result.report, result.report["best"]
    return {
        "critic": Path(critic).name, "iterations": report["passes"], "stopped": report["stopped"],
        "best": best["index"], "best_iteration": best["iteration"], "best_seed": best["seed"],
        "best_denoise": best["denoise"], "accepted": best["accepted"], "pick": best["pick"],
        "target_probability": best["target_probability"], "ssim": best["ssim"], "settings": report["settings"],
    }


def write_report(path: Path, report: dict, overwrite: bool) -> None:
    """Whole file or nothing: written beside the target, then moved into place."""
    path = Path(path)
    refuse_existing([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
        os.replace(tmp, path)
