"""Read preference pairs from a folder in one of three layouts, detected in this order:

1. this project's format (``pairs.jsonl``, see ``format``);
2. EmoEditor's EmoPair JSON (``json/data_EmoPair.json`` or a top-level ``*.json`` list of
   ``{"img_src_path", "img_tgt_path", "class_source", "class_target", "prompt"}``; image paths
   relative to the folder or its ``EmoPair/`` sub-folder): the target image is chosen, the
   source image rejected, the source class is the pair's negative emotion;
3. EmoSet-118K (``image/``, ``annotation/``, split lists; see ``datasets.emoset``) or one
   sub-folder per emotion: each image of the split is chosen for its emotion against the
   image with the most similar caption (TF-IDF cosine) of an emotion of opposite valence
   (rotating through the four), with its caption as the prompt.

EmoPair and EmoSet pairs carry no visual prompts: they come from a prompt bank, retrieved
by the caption (``training.bank_prompts``), never from the pair's own images.

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
from .format import PAIRS_FILE, PreferencePair, inside, parse_pair

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
                parse_emotion(row.get("class_source")), id=str(number)))
        except InvalidInputError as exc:
            result.skipped.append((where, str(exc)))
    return result


def _opposite(emotion: str, index: int, available: set[str]) -> str | None:
    other = sorted(NEGATIVE if emotion in POSITIVE else POSITIVE, key=EMOTIONS.index)
    other = [e for e in other if e in available]
    return other[index % len(other)] if other else None


def _nearest_captions(queries: list[str], candidates: list[str]) -> list[int]:
    """Index of the most similar candidate caption (TF-IDF cosine, first on ties) per query."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer().fit(queries + candidates)
    pool = vectorizer.transform(candidates).T.tocsc()
    nearest = []
    for start in range(0, len(queries), 1024):  # bounded memory at EmoSet-118K scale
        scores = (vectorizer.transform(queries[start:start + 1024]) @ pool).toarray()
        nearest.extend(int(i) for i in scores.argmax(axis=1))
    return nearest


def _read_emoset(root: Path, split: str | None, strict: bool) -> ReadResult:
    from ..datasets.emoset import read_labelled_images

    found = read_labelled_images(root, split, strict)
    result = ReadResult([], "emoset-118k" if found.split else "emoset")
    result.skipped.extend((path, "listed image missing") for path in found.missing_images)
    images = found.images
    for emotion, winners in images.items():
        losers_by_emotion: dict[str, list[int]] = {}
        for index, image in enumerate(winners):
            negative = _opposite(emotion, index, set(images))
            if negative is None:
                result.skipped.append((str(image.path), f"no images of the opposite valence to pair {emotion} with"))
                continue
            losers_by_emotion.setdefault(negative, []).append(index)
        for negative, indices in losers_by_emotion.items():
            losers = images[negative]
            nearest = _nearest_captions([winners[i].caption for i in indices], [l.caption for l in losers])
            for index, loser in zip(indices, nearest):
                image, rejected = winners[index], losers[loser]
                result.pairs.append(PreferencePair(image.path, rejected.path, image.caption, emotion, negative,
                                                   id=f"{emotion}/{image.path.name}",
                                                   extra={"rejected_caption": rejected.caption}))
    result.pairs.sort(key=lambda p: (EMOTIONS.index(p.target_emotion), p.id))
    return result


def read_dataset(folder: str | Path, split: str | None = "train", strict: bool = False) -> ReadResult:
    """All usable pairs of ``folder`` (layout detected), with the skipped rows counted and logged.
    ``split`` and ``strict`` apply to EmoSet-118K trees (``datasets.emoset``)."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"dataset folder not found: {root}")
    if (root / PAIRS_FILE).is_file():
        result = _read_jsonl(root)
    elif (emopair := _emopair_file(root)) is not None:
        result = _read_emopair(root, emopair)
    else:
        result = _read_emoset(root, split, strict)
    result.log_skipped()
    return result
