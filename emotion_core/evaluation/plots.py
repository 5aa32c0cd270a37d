"""The report's pictures as PNG bytes (matplotlib's object API, no pyplot state, no display):
a confusion matrix per critic, per-emotion bars with their confidence intervals, thumbnails."""

from __future__ import annotations

import io

from ..taxonomy import EMOTIONS

DPI = 100


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def confusion_png(matrix: list[list[int]], title: str) -> bytes:
    """Row-normalised confusion matrix (target rows, top-1 columns) with the counts written in."""
    import numpy as np
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=np.float64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    figure = Figure(figsize=(5.2, 4.6))
    axes = figure.add_subplot()
    shown = axes.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
    axes.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axes.set_xlabel("critic's top-1")
    axes.set_ylabel("target")
    axes.set_title(title)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            if counts[i, j]:
                axes.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                          color="white" if rates[i, j] > 0.5 else "black")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    return _png(figure)


def bars_png(series: dict[str, dict[str, dict | None]], title: str, ylabel: str, scale: float = 1.0) -> bytes:
    """Grouped bars: per emotion (x) one bar per series (critic or run), 95% CI as error bars.
    ``series[name][emotion]`` is a summary stat (``mean``, ``ci95``) or None."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(series)
    width = 0.8 / max(len(names), 1)
    figure = Figure(figsize=(7.5, 3.4))
    axes = figure.add_subplot()
    x = np.arange(len(EMOTIONS))
    for k, name in enumerate(names):
        stats = [series[name].get(e) for e in EMOTIONS]
        means = np.array([s["mean"] * scale if s else np.nan for s in stats])
        low = np.array([(s["mean"] - s["ci95"][0]) * scale if s and s["ci95"] else 0.0 for s in stats])
        high = np.array([(s["ci95"][1] - s["mean"]) * scale if s and s["ci95"] else 0.0 for s in stats])
        axes.bar(x + (k - (len(names) - 1) / 2) * width, np.nan_to_num(means), width, yerr=[low, high],
                 capsize=2, label=name)
    axes.set_xticks(x, EMOTIONS, rotation=30, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if len(names) > 1:
        axes.legend(fontsize=7)
    return _png(figure)


def thumbnail_jpeg(path: str, side: int = 96) -> bytes | None:
    """A small JPEG of an image file; None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
            return buffer.getvalue()
    except OSError:
        return None
