"""``summary.json`` / ``summary.csv`` / ``summary.md`` from the rows: overall and per-emotion means of
each metric, with 95% percentile-bootstrap confidence intervals (seeded: the same rows give the
same file), a confusion matrix per critic, and the skipped images with their reasons."""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..taxonomy import EMOTIONS
from .store import strict, write_text

CRITIC_METRICS = ("emo_a", "emo_score", "emo_a_2class", "emo_score_2class", "emo_s", "esmi")
PAIR_METRICS = ("ssim_emoedit", "ssim_emoeditor", "clip_i", "clip_score")  # critic-independent
# what each number is and whose definition it follows (summary.json's "definitions", the README's table)
DEFINITIONS = {
    "emo_a": "Emo-A: the critic's top-1 emotion is the target (EmoGen inference.py emo_cls / EmoEdit ACC_args.py)",
    "emo_score": "target's probability under the critic (the 'emo_score (8 class)' of EmoGen/EmoEdit)",
    "emo_a_2class": "valence accuracy: positive/negative sums of the 8 probabilities (EmoGen/EmoEdit '2 class')",
    "emo_score_2class": "probability of the target's valence (EmoGen/EmoEdit 'emo_score (2 class)')",
    "emo_s": "Emo-S: p_target(edit) - p_target(source) on EmoEdit's 512x512 pair (EmoEdit Metric_args.py)",
    "esmi": "ESMI x100: 0.5 S_str + 0.5 S_emo (EmoEditor metric_ESMI.py); mean over finite values",
    "ssim_emoedit": "SSIM as EmoEdit computes it: skimage 7x7 uniform, RGB mean, 512x512, source centre-cropped "
                    "(EmoEdit Metric_args.py)",
    "ssim_emoeditor": "EmoEditor's SSIM gate: gray 224x224, 51x51 uniform window (EmoEditor utils.cal_ssim)",
    "clip_i": "CLIP-I: cosine of CLIP image embeddings of edit and source, EmoEdit's 512x512 pair "
              "(EmoEdit Metric_args.py count_CLIP_I); needs --clip-model",
    "clip_score": "CLIP-score: 100 * max(cos(image, prompt), 0) (torchmetrics CLIPScore); needs --clip-model",
}
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
_CHUNK = 50  # resamples drawn at once: memory stays ~ 50 x rows


def bootstrap_ci(values: Sequence[float], name: str, seed: int, resamples: int) -> list[float] | None:
    """Percentile bootstrap interval of the mean; the generator is seeded from ``seed`` and ``name``."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2 or resamples < 1:
        return None
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    means = []
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        means.append(data[rng.integers(0, data.size, size=(count, data.size))].mean(axis=1))
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(np.concatenate(means), [tail, 1.0 - tail])
    return [float(low), float(high)]


def _stat(values: list[float], name: str, seed: int, resamples: int) -> dict | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    stat = {"mean": float(np.mean(finite)), "ci95": bootstrap_ci(finite, name, seed, resamples), "n": len(finite)}
    if len(finite) < len(values):
        stat["not_finite"] = len(values) - len(finite)
    return stat


def _group_stats(rows: list[dict], critics: Sequence[str], scope: str, seed: int, resamples: int) -> dict:
    out: dict = {"images": len(rows), "critics": {}}
    for critic in critics:
        stats = {}
        for metric in CRITIC_METRICS:
            values = [row["critics"][critic].get(metric) for row in rows if metric in row["critics"][critic]]
            if values:
                stats[metric] = _stat(values, f"{scope}/{critic}/{metric}", seed, resamples)
        out["critics"][critic] = stats
    for metric in PAIR_METRICS:
        values = [row[metric] for row in rows if metric in row]
        if values:
            out[metric] = _stat(values, f"{scope}/{metric}", seed, resamples)
    return out


def confusion(rows: list[dict], critic: str) -> list[list[int]]:
    """Counts ``[target][top-1]`` in canonical order."""
    matrix = [[0] * len(EMOTIONS) for _ in EMOTIONS]
    for row in rows:
        matrix[EMOTIONS.index(row["target"])][EMOTIONS.index(row["critics"][critic]["top"])] += 1
    return matrix


def summarize(rows: list[dict], critics: dict[str, dict], seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
              extra: dict | None = None) -> dict:
    """The summary of a run; ``critics`` maps each critic's name to what it is (file, kind, class order)."""
    scored = [row for row in rows if "skipped" not in row]
    names = list(critics)
    summary = {
        "images": len(rows),
        "scored": len(scored),
        "skipped": [{"image": row["image"], "reason": row["skipped"]} for row in rows if "skipped" in row],
        "critics": critics,
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE, "method": "percentile"},
        "overall": _group_stats(scored, names, "overall", seed, resamples),
        "per_emotion": {},
        "confusion": {name: confusion(scored, name) for name in names},
        "definitions": DEFINITIONS,
    }
    for emotion in EMOTIONS:
        group = [row for row in scored if row["target"] == emotion]
        if group:
            summary["per_emotion"][emotion] = _group_stats(group, names, emotion, seed, resamples)
    summary.update(extra or {})
    return summary


def _cells(stat: dict | None, percent: bool) -> tuple[str, str, str]:
    if not stat:
        return "", "", ""
    scale = 100.0 if percent else 1.0
    ci = stat["ci95"]
    return (f"{stat['mean'] * scale:.4f}", "" if ci is None else f"{ci[0] * scale:.4f}",
            "" if ci is None else f"{ci[1] * scale:.4f}")


def summary_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scope", "critic", "metric", "mean", "ci95_low", "ci95_high", "n"])
    groups = [("overall", summary["overall"]), *summary["per_emotion"].items()]
    for scope, group in groups:
        for critic, stats in group["critics"].items():
            for metric, stat in stats.items():
                if stat:
                    writer.writerow([scope, critic, metric, *_cells(stat, False), stat["n"]])
        for metric in PAIR_METRICS:
            if group.get(metric):
                writer.writerow([scope, "", metric, *_cells(group[metric], False), group[metric]["n"]])
    return buffer.getvalue()


def _fmt(stat: dict | None, percent: bool) -> str:
    mean, low, high = _cells(stat, percent)
    if not mean:
        return "-"
    unit = "%" if percent else ""
    mean, low, high = (f"{float(v):.2f}" if percent else f"{float(v):.3f}" for v in (mean, low or mean, high or mean))
    return f"{mean}{unit} [{low}, {high}]"


PERCENT = {"emo_a", "emo_a_2class"}
TITLES = {"emo_a": "Emo-A", "emo_score": "emo score", "emo_a_2class": "Emo-A (2)", "emo_score_2class": "score (2)",
          "emo_s": "Emo-S", "esmi": "ESMI", "ssim_emoedit": "SSIM (EmoEdit)", "ssim_emoeditor": "SSIM (EmoEditor gate)",
          "clip_i": "CLIP-I", "clip_score": "CLIP-score"}


def table_columns(summary: dict) -> list[str]:
    """The metrics present in this run, in table order."""
    overall = summary["overall"]
    columns = [m for m in CRITIC_METRICS if any(overall["critics"][c].get(m) for c in overall["critics"])]
    return columns + [m for m in PAIR_METRICS if overall.get(m)]


def table_rows(summary: dict, critic: str) -> list[tuple[str, list[str]]]:
    """``(scope, cells)`` for one critic: overall first, then each emotion; cells are 'mean [lo, hi]'."""
    columns = table_columns(summary)
    out = []
    for scope, group in [("overall", summary["overall"]), *summary["per_emotion"].items()]:
        stats = group["critics"].get(critic, {})
        out.append((scope, [_fmt(stats.get(m) if m in CRITIC_METRICS else group.get(m), m in PERCENT)
                            for m in columns]))
    return out


def summary_md(summary: dict) -> str:
    columns = table_columns(summary)
    lines = [f"# Evaluation: {summary['scored']} images scored, {len(summary['skipped'])} skipped", ""]
    for critic in summary["critics"]:
        lines += [f"## {critic}", "", "| | " + " | ".join(TITLES[m] for m in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        lines += [f"| {scope} | " + " | ".join(cells) + " |" for scope, cells in table_rows(summary, critic)]
        lines.append("")
    lines.append(f"Means with {int(CONFIDENCE * 100)}% bootstrap intervals ({summary['bootstrap']['resamples']} "
                 f"resamples, seed {summary['bootstrap']['seed']}).")
    for metric in columns:
        lines.append(f"- **{TITLES[metric]}**: {DEFINITIONS[metric]}")
    if summary.get("metrics_not_run"):
        lines += ["", "## Metrics not run", ""] + [f"- {k}: {v}" for k, v in summary["metrics_not_run"].items()]
    if summary["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s['image']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines) + "\n"


def write_summary(run_dir: Path, summary: dict) -> None:
    write_text(run_dir / "summary.json", json.dumps(strict(summary), indent=2, allow_nan=False) + "\n")
    write_text(run_dir / "summary.csv", summary_csv(summary))
    write_text(run_dir / "summary.md", summary_md(summary))
