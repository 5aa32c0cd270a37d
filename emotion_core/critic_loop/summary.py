"""The loop report (``LoopResult.report``) condensed once, for every place that shows a
run's outcome: the Emotion Critic Loop node's panel, the CLI's PNG metadata and ``--json``,
and the image report of Save Emotion Image. Each picks and names the fields its own format
documents; what the outcome is, and the per-pass series, are decided here."""

from __future__ import annotations

from collections.abc import Mapping


def summary(report: Mapping) -> dict:
    """The outcome: target, passes run, why the loop stopped, its settings, and the best
    candidate's index, pass, seed, denoise, verdict, why it was picked and scores.

    Needs ``target``, ``passes``, ``stopped`` and the best candidate's ``seed``, ``denoise``
    and ``ssim``; any other part a (hand-made) report lacks is ``None``."""
    best = report["best"]
    return {
        "target": report["target"],
        "passes": report["passes"],
        "stopped": report["stopped"],
        "settings": report.get("settings"),
        "best": best.get("index"),
        "best_iteration": best.get("iteration"),
        "best_seed": best["seed"],
        "best_denoise": best["denoise"],
        "best_accepted": best.get("accepted"),
        "pick": best.get("pick"),
        "best_ssim": best["ssim"],
        "best_target_probability": best.get("target_probability"),
        "best_distribution": best.get("distribution"),
    }


def pass_series(report: Mapping) -> list[dict]:
    """Per pass, for a chart: its denoise and each candidate's SSIM, target probability and verdict."""
    return [{"iteration": it["iteration"], "denoise": it["denoise"],
             "ssim": [c["ssim"] for c in it["candidates"]],
             "target_probability": [c["target_probability"] for c in it["candidates"]],
             "accepted": [c["accepted"] for c in it["candidates"]]} for it in report["iterations"]]
