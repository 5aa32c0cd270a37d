"""Read preference pairs from a folder in one of three layouts, detected in this order:

1. this project's format (``pairs.jsonl``, see ``format``);
2. EmoEditor's EmoPair JSON (``json/data_EmoPair.json`` or a top-level ``*.json`` list of
   ``{"img_src_path", "img_tgt_path", "class_source", "class_target", "prompt"}``; image paths
   relative to the folder or its ``EmoPair/`` sub-folder): the target image is chosen, the
   source image rejected, the source class is the negative emotion, and each image is its
   branch's visual prompt;
3. EmoSet (one sub-folder per emotion): each image is chosen for its emotion against the
   image at the same position of an emotion of opposite valence (rotating through the four),
   with its caption as the prompt and the two images as the visual prompts.

Rows that are corrupt or partial (bad JSON, missing fields, missing or escaping files,
unknown emotions) are skipped and counted with their reasons, never silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS, NEGATIVE, POSITIVE, parse_emotion
from .format import PAIRS_FILE, PreferencePair, VisualPromptRef, inside, parse_pair

log = logging.getLogger(__name__)

EMOPAIR_KEYS = ("img_src_path", "img_tgt_path", "class_source", "class_target", "prompt")


@dataclass
class ReadResult:
    pairs: list[PreferencePair]
    layout: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)

    def log_skipped(self) -> None:
        if self.skipped:
            log.warning("skipped %d corrupt or partial rows of %d", len(self.skipped),
                        len(self.skipped) + len(self.pairs))
            for where, why in self.skipped[:10]:
                log.warning("  %s: %s", where, why)


def _read_jsonl(root: Path) -> ReadResult:
    result = ReadResult([], "jsonl")
    lines = (root / PAIRS_FILE).read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{PAIRS_FILE}:{number}"
        try:
            result.pairs.append(parse_pair(root, json.loads(raw.decode("utf-8"))))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            result.skipped.append((where, f"not valid JSON ({exc})"))
        except InvalidInputError as exc:
            result.skipped.append((where, str(exc)))
    return result


def _emopair_file(root: Path) -> Path | None:
    candidates = [root / "json" / "data_EmoPair.json", *sorted(root.glob("*.json"))]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, list) and data and isinstance(data[0], dict) and all(k in data[0] for k in EMOPAIR_KEYS):
            return path
    return None


def _emopair_image(root: Path, relative: Any, what: str) -> Path:
    for base in (root, root / "EmoPair"):
        if base.is_dir():
            path = inside(base, relative, what)
            if path.is_file():
                return path
    raise InvalidInputError(f"{what} {relative!r} not found under {root} or {root / 'EmoPair'}")


def _read_emopair(root: Path, path: Path) -> ReadResult:
    result = ReadResult([], "emopair")
    for number, row in enumerate(json.loads(path.read_text(encoding="utf-8")), start=1):
        where = f"{path.name}[{number - 1}]"
        try:
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise InvalidInputError(f"expected an object with {EMOPAIR_KEYS}")
            target = _emopair_image(root, row.get("img_tgt_path"), "img_tgt_path")
            source = _emopair_image(root, row.get("img_src_path"), "img_src_path")
            result.pairs.append(PreferencePair(
                target, source, row["prompt"], parse_emotion(row.get("class_target")),
                parse_emotion(row.get("class_source")), VisualPromptRef(images=(target,)),
                VisualPromptRef(images=(source,)), id=str(number)))
        except InvalidInputError as exc:
            result.skipped.append((where, str(exc)))
    return result


def _opposite(emotion: str, index: int, available: set[str]) -> str | None:
    other = sorted(NEGATIVE if emotion in POSITIVE else POSITIVE, key=EMOTIONS.index)
    other = [e for e in other if e in available]
    return other[index % len(other)] if other else None


def _read_emoset(root: Path) -> ReadResult:
    from ..bank.dataset import scan_emotion_folder

    result = ReadResult([], "emoset")
    found = scan_emotion_folder(root)
    for emotion, images in found.items():
        for index, image in enumerate(images):
            negative = _opposite(emotion, index, set(found))
            if negative is None:
                result.skipped.append((str(image.path.relative_to(root)),
                                       f"no images of the opposite valence to pair {emotion} with"))
                continue
            others = found[negative]
            rejected = others[index % len(others)].path
            result.pairs.append(PreferencePair(
                image.path, rejected, image.caption, emotion, negative, VisualPromptRef(images=(image.path,)),
                VisualPromptRef(images=(rejected,)), id=f"{emotion}/{image.path.name}"))
    return result


def read_dataset(folder: str | Path) -> ReadResult:
    """All usable pairs of ``folder`` (layout detected), with the skipped rows counted and logged."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"dataset folder not found: {root}")
    if (root / PAIRS_FILE).is_file():
        result = _read_jsonl(root)
    elif (emopair := _emopair_file(root)) is not None:
        result = _read_emopair(root, emopair)
    else:
        result = _read_emoset(root)
    result.log_skipped()
    return result
