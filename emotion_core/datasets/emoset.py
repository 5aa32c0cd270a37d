"""EmoSet-118K as published (JingyuanYY/EmoSet: README, ``EmoSet.py``, ``info.json``)::

    ROOT/info.json                      label2idx / idx2label per attribute and for the emotions
    ROOT/train.json, val.json, test.json
        [[emotion, image_id, "image/<emotion>/<image_id>.jpg", "annotation/<emotion>/<image_id>.json"], ...]
    ROOT/image/<emotion>/<image_id>.jpg
    ROOT/annotation/<emotion>/<image_id>.json
        {"image_id": ..., "emotion": ..., "scene": "amusement_park", "object": ["Person", ...],
         "facial_expression": "happy", "human_action": "applauding", "brightness": 0.6, "colorfulness": 0.7}

Captions, first found wins: a sidecar ``<image>.txt``; a ``caption`` field in the
annotation (a caption column); the folder's ``captions.jsonl``; the annotation's
attributes (``emoset_captions``); the file name's words (counted as a missing annotation;
``strict`` makes that an error). A tree without split lists reads every image under
``image/<emotion>/``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bank.dataset import IMAGE_SUFFIXES, LabelledImage, jsonl_captions, sidecar_caption, words_from_name
from ..errors import InvalidInputError
from ..preference.format import inside
from ..taxonomy import EMOTIONS
from .emoset_captions import caption_from_attributes

log = logging.getLogger(__name__)

EMOSET_SPLITS = ("train", "val", "test")
EMOSET_ATTRIBUTES = ("scene", "object", "facial_expression", "human_action", "brightness", "colorfulness")
IMAGE_DIR, ANNOTATION_DIR, INFO_FILE = "image", "annotation", "info.json"


@dataclass
class EmoSetRead:
    """One split's images per emotion (canonical order), with what had to be guessed."""

    images: dict[str, list[LabelledImage]]
    split: str | None
    missing_annotations: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.images.values())


def is_emoset_tree(root: str | Path) -> bool:
    """EmoSet-118K's layout: an ``image/`` folder next to ``annotation/`` or a split list."""
    root = Path(root)
    return (root / IMAGE_DIR).is_dir() and ((root / ANNOTATION_DIR).is_dir()
                                             or any((root / f"{s}.json").is_file() for s in EMOSET_SPLITS))


def _emotion(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in EMOTIONS:
        raise InvalidInputError(f"{where}: emotion {value!r} is not one of the eight EmoSet emotions "
                                f"({', '.join(EMOTIONS)})")
    return value.lower()


def _list_entries(root: Path, split: str) -> list[tuple[str, str, Path, Path]]:
    """(emotion, image_id, image path, annotation path) of a split list; paths must stay inside ROOT."""
    path = root / f"{split}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: expected a list of [emotion, image_id, image path, annotation path]")
    if not data:
        raise InvalidInputError(f"{path}: the {split} split is empty; pick another with --split "
                                f"({', '.join(EMOSET_SPLITS)})")
    entries = []
    for number, row in enumerate(data):
        where = f"{path.name}[{number}]"
        if not (isinstance(row, list) and len(row) >= 4 and all(isinstance(v, str) for v in row[:4])):
            raise InvalidInputError(f"{where}: expected [emotion, image_id, \"image/<emotion>/<id>.jpg\", "
                                    f"\"annotation/<emotion>/<id>.json\"], got {row!r}"[:300])
        emotion = _emotion(row[0], where)
        image = inside(root, row[2], f"{where} image path")
        annotation = inside(root, row[3], f"{where} annotation path")
        entries.append((emotion, row[1], image, annotation))
    return entries


def _folder_entries(root: Path) -> list[tuple[str, str, Path, Path]]:
    folders = sorted(p for p in (root / IMAGE_DIR).iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = []
    for folder in folders:
        emotion = _emotion(folder.name, str(folder))
        for image in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            entries.append((emotion, image.stem, image, root / ANNOTATION_DIR / folder.name / f"{image.stem}.json"))
    return entries


def _annotation(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: annotation is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: an annotation must be a JSON object of attributes")
    return data


def read_emoset(root: str | Path, split: str | None = "train", strict: bool = False) -> EmoSetRead:
    """The images of ``split`` (``None``, or no list files: every image under ``image/``)."""
    root = Path(root)
    if split is not None and split not in EMOSET_SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(EMOSET_SPLITS)}, got {split!r}")
    has_lists = any((root / f"{s}.json").is_file() for s in EMOSET_SPLITS)
    if split is not None and has_lists:
        if not (root / f"{split}.json").is_file():
            raise InvalidInputError(f"{root}: no {split}.json split list (found "
                                    f"{[s for s in EMOSET_SPLITS if (root / f'{s}.json').is_file()]})")
        entries = _list_entries(root, split)
    else:
        entries, split = _folder_entries(root), None
    result = EmoSetRead({}, split)
    jsonl: dict[Path, dict[str, str]] = {}
    for emotion, image_id, image, annotation_path in entries:
        if not image.is_file():
            result.missing_images.append(str(image.relative_to(root.resolve()) if image.is_absolute() else image))
            continue
        annotation = _annotation(annotation_path)
        if annotation is None and strict:
            raise InvalidInputError(f"{annotation_path}: annotation missing (--strict); EmoSet-118K has one per image")
        if image.parent not in jsonl:
            jsonl[image.parent] = jsonl_captions(image.parent)
        caption, source = sidecar_caption(image), "sidecar"
        if not caption and annotation and isinstance(annotation.get("caption"), str) and annotation["caption"].strip():
            caption, source = annotation["caption"].strip(), "caption field"
        if not caption and image.name in jsonl[image.parent]:
            caption, source = jsonl[image.parent][image.name], "captions.jsonl"
        if not caption and annotation:
            caption, source = caption_from_attributes(annotation), "attributes"
        if not caption:
            caption, source = words_from_name(image, emotion), "file name"
            if annotation is None:
                result.missing_annotations.append(image_id)
        result.images.setdefault(emotion, []).append(LabelledImage(image, emotion, caption, source))
    if result.missing_images:
        log.warning("%d listed images are missing (skipped), e.g. %s", len(result.missing_images),
                    result.missing_images[:3])
    if result.missing_annotations:
        log.warning("%d images have no annotation file: captioned from their file names (--strict refuses this)",
                    len(result.missing_annotations))
    if not result.images:
        raise InvalidInputError(f"{root}: the {split or 'image/'} split has no readable images")
    result.images = {e: result.images[e] for e in EMOTIONS if e in result.images}
    return result


def read_labelled_images(root: str | Path, split: str | None = "train", strict: bool = False) -> EmoSetRead:
    """An EmoSet-118K tree (``read_emoset``) or a plain folder of one sub-folder per emotion."""
    from ..bank.dataset import scan_emotion_folder

    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"image folder not found: {root}")
    if is_emoset_tree(root):
        return read_emoset(root, split, strict)
    images = scan_emotion_folder(root)
    result = EmoSetRead(images, None)
    if strict:
        guessed = [i.path.name for v in images.values() for i in v if i.caption_source == "file name"]
        if guessed:
            raise InvalidInputError(f"{root}: {len(guessed)} images have no caption (--strict), e.g. {guessed[:3]}")
    return result
