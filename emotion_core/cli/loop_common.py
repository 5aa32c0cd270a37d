"""What ``edit`` and ``generate --critic-loop`` share on the command line: the Emotion Critic
Loop's options and their check, and the loop's outcome as ``generate`` records it, so both
commands are driven and report alike (the loop itself: ``emotion_core.pipeline.critic_loop``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import fraction

# command-line destination -> LoopSettings field (whose default is the option's default)
LOOP_FIELDS = {
    "denoise_min": "denoise_low", "denoise_max": "denoise_high", "ssim_min": "ssim_low", "ssim_max": "ssim_high",
    "confidence": "confidence", "rule": "rule", "max_iterations": "max_iterations", "candidates": "candidates",
}
# generate's "critic_loop" metadata key -> the loop summary's field (``critic_loop.summary``)
CRITIC_LOOP_KEYS = {
    "iterations": "passes", "stopped": "stopped", "best": "best", "best_iteration": "best_iteration",
    "best_seed": "best_seed", "best_denoise": "best_denoise", "accepted": "best_accepted", "pick": "pick",
    "target_probability": "best_target_probability", "ssim": "best_ssim", "settings": "settings",
}


def add_loop_arguments(parser: argparse.ArgumentParser, critic_required: bool,
                       max_iterations_help: str | None = None) -> None:
    """``--critic``, ``--report`` and the loop's settings (defaults: ``LoopSettings``).
    ``max_iterations_help``: a command whose ``--max-iterations`` default depends on its mode
    says so here; the option then defaults to None (``loop_settings``: the settings' default)."""
    from ..critic_loop.settings import RULES, LoopSettings

    default = LoopSettings()
    parser.add_argument("--critic", required=critic_required, metavar="FILE", help="emotion critic file")
    parser.add_argument("--report", metavar="JSON", help="also write the full per-pass report here")
    parser.add_argument("--denoise-min", type=fraction, metavar="D", default=default.denoise_low,
                        help=f"lowest denoise drawn per pass (default {default.denoise_low})")
    parser.add_argument("--denoise-max", type=fraction, metavar="D", default=default.denoise_high,
                        help=f"highest denoise drawn per pass (default {default.denoise_high})")
    parser.add_argument("--ssim-min", type=fraction, metavar="S", default=default.ssim_low,
                        help=f"SSIM-to-source window low end (default {default.ssim_low})")
    parser.add_argument("--ssim-max", type=fraction, metavar="S", default=default.ssim_high,
                        help=f"SSIM-to-source window high end (default {default.ssim_high})")
    parser.add_argument("--confidence", type=fraction, metavar="P", default=default.confidence,
                        help=f"stop at this target probability (default {default.confidence})")
    parser.add_argument("--rule", choices=RULES, default=default.rule,
                        help=f"acceptance rule (default {default.rule})")
    parser.add_argument("--max-iterations", type=int, metavar="N",
                        default=default.max_iterations if max_iterations_help is None else None,
                        help=max_iterations_help or f"hard cap on passes (default {default.max_iterations})")
    parser.add_argument("--candidates", type=int, metavar="N", default=default.candidates,
                        help=f"candidates per pass, one batch (default {default.candidates})")


def loop_settings(args: argparse.Namespace):
    """The checked ``LoopSettings`` of the command line (seeded by ``--seed``); an option left at
    None takes the settings' default."""
    from ..critic_loop import LoopSettings

    given = {field: getattr(args, dest) for dest, field in LOOP_FIELDS.items() if getattr(args, dest) is not None}
    return LoopSettings(**given, seed=args.seed)


def loop_options_given(args: argparse.Namespace) -> list[str]:
    """The loop flags set to something other than their default (for commands where the loop is optional)."""
    from ..critic_loop import LoopSettings

    default = LoopSettings()
    given = [f"--{dest}" for dest in ("critic", "report") if getattr(args, dest) is not None]
    given += [f"--{dest.replace('_', '-')}" for dest, field in LOOP_FIELDS.items()
              if getattr(args, dest) not in (None, getattr(default, field))]
    return given


def loop_summary(report: dict, critic: str) -> dict:
    """``generate``'s ``critic_loop`` metadata (also in ``--json``): the critic's file name
    (never a path) and the loop's summary under the names ``generate`` documents."""
    from ..critic_loop.summary import summary

    outcome = summary(report)
    return {"critic": Path(critic).name, **{key: outcome[field] for key, field in CRITIC_LOOP_KEYS.items()}}
