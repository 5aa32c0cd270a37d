"""Small datasets for the ``eval`` tests: an EmoSet-style ``<emotion>/`` tree of noise images of
mixed sizes and formats (plus one unreadable file), and an edit manifest with sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((40, 56), (64, 64), (52, 36))  # (height, width): non-square, so crops and resizes matter


def noise_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # smooth colour field + noise: SSIMs not ~0
    field = np.asarray(Image.fromarray(base).resize((size[1], size[0]), Image.BILINEAR), dtype=np.int16)
    pixels = np.clip(field + rng.integers(-40, 41, field.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def write_emotion_tree(root: Path, emotions: tuple[str, ...], per_emotion: int, broken: bool = True) -> Path:
    """``root/<emotion>/<emotion>_<k>.(jpg|png)``; with ``broken`` an unreadable ``awe/broken.jpg``."""
    for e_index, emotion in enumerate(emotions):
        for k in range(per_emotion):
            suffix = ".jpg" if k % 2 == 0 else ".png"
            noise_image(root / emotion / f"{emotion}_{k}{suffix}", SIZES[k % len(SIZES)], 100 * e_index + k)
    if broken:
        (root / "awe").mkdir(parents=True, exist_ok=True)
        (root / "awe" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return root


def write_edit_manifest(root: Path, pairs: int) -> Path:
    """``root/manifest.jsonl``: ``pairs`` edits, each a lightly changed copy of its source."""
    records = []
    targets = ("awe", "sadness", "amusement", "fear")
    for k in range(pairs):
        source = noise_image(root / "sources" / f"s{k}.jpg", SIZES[k % len(SIZES)], 1000 + k)
        with Image.open(source) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        shifted = np.clip(pixels + np.random.default_rng(k).integers(-25, 26, pixels.shape), 0, 255)
        edit = root / "edits" / f"e{k}.png"
        edit.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shifted.astype(np.uint8)).resize((48, 48)).save(edit)
        records.append({"image": f"edits/e{k}.png", "target": targets[k % len(targets)],
                        "source": f"sources/s{k}.jpg"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return manifest
