"""Tiny datasets in the published layouts, for tests and for trying the data commands.

``write_emoset_tree``: EmoSet-118K's tree exactly as released (JingyuanYY/EmoSet README and
``EmoSet.py``): ``info.json`` (label2idx / idx2label for the emotions and the six
attributes), ``train.json`` / ``val.json`` / ``test.json`` lists of ``[emotion, image_id,
"image/<emotion>/<image_id>.jpg", "annotation/<emotion>/<image_id>.json"]``, JPEG images
named ``<emotion>_<nnnnn>.jpg`` and annotation JSONs with EmoSet's attribute fields and value
types (``scene``/``facial_expression``/``human_action`` strings, ``object`` a list of
strings, ``brightness``/``colorfulness`` floats in tenths; attributes may be absent).

``write_emopair_tree``: EmoEditor's EmoPair: ``json/data_EmoPair.json`` (``img_src_path``,
``img_tgt_path`` relative to ``EmoPair/``, ``class_source``, ``class_target``, ``prompt``,
``source_softmax`` in EmoEditor's alphabetical class order) and the images under ``EmoPair/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..taxonomy import EMOTIONS

EMOSET_DIR = "datasets/emoset_tiny"
EMOPAIR_DIR = "datasets/emopair_tiny"
SPLIT_SHARES = (("train", 6), ("val", 1), ("test", 1))  # images per emotion and split
IMAGE_SIZE = 48
# Per emotion: scenes and objects the attribute captions vary over (as EmoSet's own vocabulary spells them).
SCENES = ("amusement_park", "beach", "forest_path", "stadium", "street", "kitchen", "mountain", "cemetery")
OBJECTS = ("Person", "Dog", "Tree", "Car", "Balloon", "Building", "Flower", "Boat")
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise")
ACTIONS = ("applauding", "dancing", "crying", "running", "hugging", "reading book")
EMOEDITOR_ORDER = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")


def _label_map(labels) -> dict:
    labels = list(labels)
    return {"label2idx": {label: i for i, label in enumerate(labels)},
            "idx2label": {str(i): label for i, label in enumerate(labels)}}


def _info() -> dict:
    levels = [f"{i / 10:.1f}" for i in range(11)]
    return {"emotion": _label_map(EMOTIONS), "brightness": _label_map(levels), "colorfulness": _label_map(levels),
            "scene": _label_map(sorted(SCENES)), "object": _label_map(sorted(OBJECTS)),
            "facial_expression": _label_map(EXPRESSIONS), "human_action": _label_map(sorted(ACTIONS))}


def _annotation(emotion: str, image_id: str, number: int, generator: torch.Generator) -> dict:
    """Attributes that vary within an emotion (so captions form several clusters)."""
    def draw(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    offset = EMOTIONS.index(emotion)
    annotation = {"image_id": image_id, "emotion": emotion,
                  "brightness": round(float(torch.randint(11, (1,), generator=generator)) / 10, 1),
                  "colorfulness": round(float(torch.randint(11, (1,), generator=generator)) / 10, 1),
                  "scene": SCENES[(offset + number) % len(SCENES)],
                  "object": sorted({draw(OBJECTS), draw(OBJECTS)})}
    if number % 2 == 0:  # EmoSet leaves attributes out where they do not apply
        annotation["facial_expression"] = draw(EXPRESSIONS)
    if number % 3 == 0:
        annotation["human_action"] = draw(ACTIONS)
    return annotation


def _write_jpeg(path: Path, seed: int, brightness: float) -> None:
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, 3, generator=generator) * 0.6 + brightness * 0.4
    noise = torch.rand(IMAGE_SIZE, IMAGE_SIZE, 3, generator=generator) * 0.3
    pixels = ((base + noise).clamp(0, 1) * 255).to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_emoset_tree(root: str | Path, seed: int = 0, with_annotations: bool = True,
                      emotions=EMOTIONS) -> dict[str, Path]:
    """The tiny EmoSet-118K tree at ``root``; without annotations its captions are degenerate."""
    root = Path(root)
    generator = torch.Generator().manual_seed(seed)
    lists: dict[str, list] = {split: [] for split, _ in SPLIT_SHARES}
    for emotion in emotions:
        number = 0
        for split, count in SPLIT_SHARES:
            for _ in range(count):
                number += 1
                image_id = f"{emotion}_{number:05d}"
                image_rel, annotation_rel = f"image/{emotion}/{image_id}.jpg", f"annotation/{emotion}/{image_id}.json"
                annotation = _annotation(emotion, image_id, number, generator)
                _write_jpeg(root / image_rel, seed * 1000 + EMOTIONS.index(emotion) * 100 + number,
                            annotation["brightness"])
                if with_annotations:
                    (root / annotation_rel).parent.mkdir(parents=True, exist_ok=True)
                    (root / annotation_rel).write_text(json.dumps(annotation), encoding="utf-8")
                lists[split].append([emotion, image_id, image_rel, annotation_rel])
    written = {"emoset_root": root}
    for split, entries in lists.items():
        written[f"emoset_{split}"] = root / f"{split}.json"
        written[f"emoset_{split}"].write_text(json.dumps(entries, indent=1), encoding="utf-8")
    (root / "info.json").write_text(json.dumps(_info(), indent=1), encoding="utf-8")
    written["emoset_info"] = root / "info.json"
    return written


EMOPAIR_PROMPTS = ("make the harbour feel calm", "add fireworks over the city", "turn the street into a storm",
                   "make the dog look joyful")


def write_emopair_tree(root: str | Path, seed: int = 0, pairs: int = 8) -> dict[str, Path]:
    """The tiny EmoPair tree at ``root`` (``json/data_EmoPair.json`` + ``EmoPair/EPGS/`` images)."""
    root = Path(root)
    rows = []
    for number in range(pairs):
        target = EMOTIONS[number % 4] if number % 2 == 0 else EMOTIONS[4 + number % 4]
        source = EMOTIONS[4 + number % 4] if number % 2 == 0 else EMOTIONS[number % 4]
        source_rel, target_rel = f"EPGS/{number:04d}_source.jpg", f"EPGS/{number:04d}_target.jpg"
        _write_jpeg(root / "EmoPair" / source_rel, seed * 1000 + 2 * number, 0.3)
        _write_jpeg(root / "EmoPair" / target_rel, seed * 1000 + 2 * number + 1, 0.7)
        softmax = [0.02] * 8
        softmax[EMOEDITOR_ORDER.index(source)] = 0.86
        rows.append({"img_src_path": source_rel, "img_tgt_path": target_rel, "class_source": source,
                     "class_target": target, "prompt": EMOPAIR_PROMPTS[number % len(EMOPAIR_PROMPTS)],
                     "source_softmax": softmax})
    path = root / "json" / "data_EmoPair.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return {"emopair_root": root, "emopair_json": path}
