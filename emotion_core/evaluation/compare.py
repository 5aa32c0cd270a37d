"""Several finished runs side by side: one table (a row per run, the overall mean and 95% interval of
each metric per critic), written as ``compare.json`` / ``compare.md`` and a self-contained
``compare.html`` with per-emotion Emo-A bars, runs as the series."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInputError
from .plots import bars_png
from .report import _img, metric_table, page
from .store import strict, write_text
from .summary import CRITIC_METRICS, PAIR_METRICS, PERCENT, TITLES, _fmt


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise InvalidInputError(f"--compare {run_dir}: no summary.json (not a finished eval run)")
    return json.loads(path.read_text(encoding="utf-8"))


def _columns(summaries: dict[str, dict]) -> list[tuple[str | None, str]]:
    """``(critic, metric)`` pairs present in any run, critic None for the pair metrics."""
    columns: list[tuple[str | None, str]] = []
    for summary in summaries.values():
        for critic, stats in summary["overall"]["critics"].items():
            columns += [(critic, m) for m in CRITIC_METRICS if stats.get(m) and (critic, m) not in columns]
        columns += [(None, m) for m in PAIR_METRICS if summary["overall"].get(m) and (None, m) not in columns]
    return columns


def compare(runs: dict[str, dict]) -> dict:
    """``{"columns": [...], "rows": {label: {column: stat}}}`` for runs ``label -> summary``."""
    columns = _columns(runs)
    table = {}
    for label, summary in runs.items():
        overall = summary["overall"]
        table[label] = {f"{critic or 'pair'}/{metric}": (overall["critics"].get(critic, {}).get(metric) if critic
                                                         else overall.get(metric)) for critic, metric in columns}
        table[label]["images"] = summary["scored"]
    return {"columns": [f"{critic or 'pair'}/{metric}" for critic, metric in columns], "rows": table}


def _header(column: str) -> str:
    critic, metric = column.split("/")
    return TITLES[metric] if critic == "pair" else f"{TITLES[metric]} ({critic})"


def _cells(comparison: dict) -> list[tuple[str, list[str]]]:
    return [(label, [str(row["images"])] + [_fmt(row[c], c.split("/")[1] in PERCENT) for c in comparison["columns"]])
            for label, row in comparison["rows"].items()]


def compare_md(comparison: dict) -> str:
    header = ["run", "images"] + [_header(c) for c in comparison["columns"]]
    lines = ["# Comparison", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in _cells(comparison)]
    return "\n".join(lines + ["", "Overall means with 95% bootstrap intervals."]) + "\n"


def compare_html(comparison: dict, runs: dict[str, dict]) -> str:
    header = ["run", "images"] + [_header(c) for c in comparison["columns"]]
    body = ["<h1>Comparison</h1>", metric_table(header, _cells(comparison), "comparison")]
    critics = []
    for summary in runs.values():
        critics += [c for c in summary["critics"] if c not in critics]
    for critic in critics:
        series = {label: {e: g["critics"].get(critic, {}).get("emo_a") for e, g in s["per_emotion"].items()}
                  for label, s in runs.items()}
        body.append(_img(bars_png(series, f"Emo-A per emotion ({critic})", "Emo-A (%)", 100.0), "image/png",
                         f"Emo-A per emotion {critic}", "plot"))
    return page("Comparison", "".join(body))


def write_comparison(out_dir: Path, runs: dict[str, Path]) -> dict:
    """Compare the runs ``label -> RUN_DIR`` into ``out_dir``; returns the comparison."""
    if len(set(runs)) != len(runs):
        raise InvalidInputError("two compared runs have the same name; use --label")
    summaries = {label: read_summary(path) for label, path in runs.items()}
    comparison = compare(summaries)
    write_text(out_dir / "compare.json", json.dumps(strict(comparison), indent=2) + "\n")
    write_text(out_dir / "compare.md", compare_md(comparison))
    write_text(out_dir / "compare.html", compare_html(comparison, summaries))
    return comparison
