"""``summary.json`` / ``summary.csv`` / ``summary.md`` from the rows: overall and per-emotion means of
each metric, with 95% percentile-bootstrap confidence intervals (seeded: the same rows give the
same file), a confusion matrix per critic, and the skipped images with their reasons."""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
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


def _stat(values: Sequence[float | None], name: str, seed: int, resamples: int) -> dict | None:
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not finite.size:
        return None
    stat = {"mean": float(finite.mean()), "ci95": bootstrap_ci(finite, name, seed, resamples), "n": int(finite.size)}
    if finite.size < len(values):
        stat["not_finite"] = len(values) - int(finite.size)
    return stat


class _Values:
    """One pass over the rows: each metric's values per scope (overall, each emotion) in compact
    float arrays (NaN for a null value), the confusion counts and the skipped images."""

    def __init__(self, critics: Sequence[str]):
        self.critics = list(critics)
        self.values: dict[tuple[str, str | None, str], array] = defaultdict(lambda: array("d"))
        self.images: dict[str, int] = defaultdict(int)
        self.confusion = {name: [[0] * len(EMOTIONS) for _ in EMOTIONS] for name in self.critics}
        self.rows = 0
        self.skipped: list[dict] = []

    def add(self, row: dict) -> None:
        self.rows += 1
        if "skipped" in row:
            self.skipped.append({"image": row["image"], "reason": row["skipped"]})
            return
        target = row["target"]
        for scope in ("overall", target):
            self.images[scope] += 1
            for critic in self.critics:
                entry = row["critics"][critic]
                for metric in CRITIC_METRICS:
                    if metric in entry:
                        self.values[scope, critic, metric].append(_number(entry[metric]))
            for metric in PAIR_METRICS:
                if metric in row:
                    self.values[scope, None, metric].append(_number(row[metric]))
        for critic in self.critics:
            self.confusion[critic][EMOTIONS.index(target)][EMOTIONS.index(row["critics"][critic]["top"])] += 1

    def group(self, scope: str, seed: int, resamples: int) -> dict:
        def stat(critic: str | None, metric: str) -> dict | None:
            values = self.values.get((scope, critic, metric))
            if not values:
                return None
            listed = [None if math.isnan(v) else v for v in values]
            return _stat(listed, f"{scope}/{critic}/{metric}" if critic else f"{scope}/{metric}", seed, resamples)

        out: dict = {"images": self.images[scope], "critics": {}}
        for critic in self.critics:
            stats = {metric: stat(critic, metric) for metric in CRITIC_METRICS if (scope, critic, metric) in self.values}
            out["critics"][critic] = stats
        for metric in PAIR_METRICS:
            if (scope, None, metric) in self.values:
                out[metric] = stat(None, metric)
        return out


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def summarize(rows: Iterable[dict], critics: dict[str, dict], seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
              extra: dict | None = None) -> dict:
    """The summary of a run from its rows (any iterable: read once); ``critics`` maps each critic's
    name to what it is (file, kind, class order)."""
    values = _Values(list(critics))
    for row in rows:
        values.add(row)
    summary = {
        "images": values.rows,
        "scored": values.images["overall"],
        "skipped": values.skipped,
        "critics": critics,
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE, "method": "percentile"},
        "overall": values.group("overall", seed, resamples),
        "per_emotion": {emotion: values.group(emotion, seed, resamples) for emotion in EMOTIONS
                        if values.images[emotion]},
        "confusion": values.confusion,
        "definitions": DEFINITIONS,
    }
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
    shown = [f"{float(v):.2f}" if percent else f"{float(v):.3f}" for v in (mean, low, high) if v]
    if len(shown) == 1:  # one value (or no resampling): no interval
        return f"{shown[0]}{unit} (n={stat['n']})"
    return f"{shown[0]}{unit} [{shown[1]}, {shown[2]}]"


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
