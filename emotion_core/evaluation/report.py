"""``report.html``: one self-contained page (no external files or scripts): the summary tables,
a confusion matrix and per-emotion bars per critic, the skipped images, and per emotion the best
and worst images by the first critic's target probability as thumbnails. Pictures are PNG/JPEG
data URIs."""

from __future__ import annotations

import base64
import heapq
import html
from collections.abc import Iterable
from pathlib import Path

from ..taxonomy import EMOTIONS
from .plots import bars_png, confusion_png, thumbnail_jpeg
from .store import write_text
from .summary import DEFINITIONS, TITLES, table_columns, table_rows

EXAMPLES = 3  # best and worst images shown per emotion

STYLE = """body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
th{background:#f0f0f0}td.scope{font-weight:bold}.grid{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:12px}
figure{margin:0;font-size:11px;text-align:center}figure img{display:block}.row{display:flex;gap:16px;flex-wrap:wrap}
h3{margin-bottom:4px}.skipped{color:#a00}"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img(data: bytes, mime: str, alt: str, css: str = "") -> str:
    return f'<img class="{css}" alt="{html.escape(alt)}" src="{data_uri(data, mime)}">'


def metric_table(header: list[str], rows: list[tuple[str, list[str]]], css: str = "metrics") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f'<tr><td class="scope">{html.escape(scope)}</td>'
                   + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>" for scope, cells in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _examples(rows: Iterable[dict], critic: str) -> str:
    """Per emotion the ``EXAMPLES`` highest and lowest target probabilities (one pass, bounded heaps)."""
    best: dict[str, list] = {e: [] for e in EMOTIONS}
    worst: dict[str, list] = {e: [] for e in EMOTIONS}
    for row in rows:
        if "critics" not in row:
            continue
        entry = row["critics"][critic]
        example = (row["image"], row["path"], entry["emo_score"], entry["top"])
        heapq.heappush(best[row["target"]], (entry["emo_score"], -row["index"], example))
        heapq.heappush(worst[row["target"]], (-entry["emo_score"], row["index"], example))
        for heap in (best[row["target"]], worst[row["target"]]):
            if len(heap) > EXAMPLES * 2:
                heapq.heappop(heap)
    parts = []
    for emotion in EMOTIONS:
        top = [e for _, _, e in sorted(best[emotion], reverse=True)][:EXAMPLES]
        bottom = [e for _, _, e in sorted(worst[emotion], reverse=True) if e not in top][:EXAMPLES]
        chosen = [("best", e) for e in top] + [("worst", e) for e in bottom]
        if not chosen:
            continue
        figures = []
        for kind, (image, path, probability, top_emotion) in chosen:
            thumb = thumbnail_jpeg(path)
            if thumb is None:
                continue
            caption = f"{kind}: p={probability:.2f}, top {top_emotion}"
            figures.append(f"<figure>{_img(thumb, 'image/jpeg', image, 'thumb')}"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append(f"<h3>{emotion}</h3><div class=\"grid\">{''.join(figures)}</div>")
    return "".join(parts)


def render_report(summary: dict, rows: Iterable[dict], title: str = "Emotion evaluation") -> str:
    columns = table_columns(summary)
    header = [""] + [TITLES[m] for m in columns]
    sections = [f"<h1>{html.escape(title)}</h1>",
                (f"<p>{summary['scored']} images scored, {len(summary['skipped'])} skipped. Means with 95% "
                 f"bootstrap intervals ({summary['bootstrap']['resamples']} resamples, seed "
                 f"{summary['bootstrap']['seed']}).</p>")]
    for critic, about in summary["critics"].items():
        described = "; ".join(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                              for key, value in about.items())
        sections.append(f"<h2>Critic {html.escape(critic)}</h2><p>{html.escape(described)}</p>")
        sections.append(metric_table(header, table_rows(summary, critic)))
        emo_a = {critic: {e: g["critics"][critic].get("emo_a") for e, g in summary["per_emotion"].items()}}
        sections.append('<div class="row">'
                        + _img(confusion_png(summary["confusion"][critic], f"{critic}: confusion"), "image/png",
                               f"confusion matrix {critic}", "plot")
                        + _img(bars_png(emo_a, f"{critic}: Emo-A per emotion", "Emo-A (%)", 100.0), "image/png",
                               f"Emo-A per emotion {critic}", "plot")
                        + "</div>")
    first = next(iter(summary["critics"]))
    sections.append(f"<h2>Best and worst per emotion ({html.escape(first)}, by target probability)</h2>")
    sections.append(_examples(rows, first))
    if summary["skipped"]:
        items = "".join(f"<li>{html.escape(s['image'])}: {html.escape(s['reason'])}</li>" for s in summary["skipped"])
        sections.append(f'<h2>Skipped</h2><ul class="skipped">{items}</ul>')
    if summary.get("metrics_not_run"):
        items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in summary["metrics_not_run"].items())
        sections.append(f"<h2>Metrics not run</h2><ul>{items}</ul>")
    sections.append("<h2>Definitions</h2><ul>" + "".join(
        f"<li><b>{html.escape(TITLES[m])}</b>: {html.escape(DEFINITIONS[m])}</li>" for m in columns) + "</ul>")
    return page(title, "".join(sections))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def write_report(run_dir: Path, summary: dict, rows: Iterable[dict]) -> Path:
    path = run_dir / "report.html"
    write_text(path, render_report(summary, rows))
    return path
