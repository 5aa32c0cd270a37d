"""Small preference data sets for train-dpo's tests and benchmark, in the pairs.jsonl layout the Save
Emotion Preference Pair node writes, with each branch's visual prompt given as images (so
the image encoder and the adapter's projection take part).

``write_colour_pairs`` makes a learnable preference: every chosen image is reddish noise,
every rejected one bluish noise, under the same prompt; the visual prompts are a red and a
blue swatch. A model can learn to denoise "red" better than the reference does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

EMOTIONS = ("contentment", "sadness")


def _noise(rng: np.random.Generator, size: int, tint: tuple[float, float, float]) -> Image.Image:
    pixels = rng.random((size, size, 3)) * 0.35 + np.array(tint) * 0.65
    return Image.fromarray((pixels * 255).astype(np.uint8))


def write_colour_pairs(root: Path, pairs: int, size: int = 32, seed: int = 0) -> Path:
    """``pairs`` pairs (red chosen, blue rejected, a red/blue swatch as visual prompts)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    _noise(rng, size, (0.9, 0.1, 0.1)).save(images / "swatch_red.png")
    _noise(rng, size, (0.1, 0.1, 0.9)).save(images / "swatch_blue.png")
    rows = []
    for index in range(pairs):
        chosen, rejected = f"images/{index:04d}_chosen.png", f"images/{index:04d}_rejected.png"
        _noise(rng, size, (0.9, 0.2, 0.1)).save(root / chosen)
        _noise(rng, size, (0.1, 0.2, 0.9)).save(root / rejected)
        rows.append({"id": f"{index:06d}", "chosen": chosen, "rejected": rejected, "prompt": "a quiet harbour",
                     "target_emotion": EMOTIONS[0], "negative_emotion": EMOTIONS[1],
                     "visual_prompts": {"positive": {"images": ["images/swatch_red.png"]},
                                        "negative": {"images": ["images/swatch_blue.png"]}}})
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def write_pairs_without_visual_prompts(root: Path, pairs: int = 2, size: int = 32) -> Path:
    """pairs.jsonl rows with no visual prompts (as EmoPair/EmoSet pairs): they need a bank."""
    write_colour_pairs(root, pairs, size)
    rows = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    for row in rows:
        row["visual_prompts"] = {"positive": None, "negative": None}
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root
