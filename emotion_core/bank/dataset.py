"""An emotion-labelled image folder in EmoSet's layout: one sub-folder per emotion
(names in any case), images inside, optional captions.

Captions, first found wins: a ``<image stem>.txt`` next to the image; a
``captions.jsonl`` in the emotion folder with ``{"file": NAME, "caption": TEXT}``
lines; else the file name turned into words (``dark_forest-01.jpg`` -> "dark forest").
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
CAPTIONS_FILE = "captions.jsonl"
_NON_WORD = re.compile(r"[^a-zA-Z]+")


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    emotion: str
    caption: str
    caption_source: str = "file name"  # sidecar | captions.jsonl | caption field | attributes | file name


def words_from_name(path: Path, emotion: str) -> str:
    """File stem as words (digits and separators dropped); the emotion name if nothing is left."""
    words = _NON_WORD.sub(" ", path.stem).strip().lower()
    return words or emotion


def jsonl_captions(folder: Path) -> dict[str, str]:
    path = folder / CAPTIONS_FILE
    if not path.is_file():
        return {}
    captions: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        name, text = (row.get("file"), row.get("caption")) if isinstance(row, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f'{path}:{number}: expected {{"file": NAME, "caption": TEXT}}, got {line.strip()!r}')
        captions[name] = text.strip()
    return captions


def sidecar_caption(image: Path) -> str:
    """The ``<image stem>.txt`` next to the image, or "" without one."""
    sidecar = image.with_suffix(".txt")
    return sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""


def _labelled(image: Path, emotion: str, from_jsonl: dict[str, str]) -> LabelledImage:
    if text := sidecar_caption(image):
        return LabelledImage(image, emotion, text, "sidecar")
    if image.name in from_jsonl:
        return LabelledImage(image, emotion, from_jsonl[image.name], "captions.jsonl")
    return LabelledImage(image, emotion, words_from_name(image, emotion), "file name")


def scan_emotion_folder(root: str | Path) -> dict[str, list[LabelledImage]]:
    """Emotion -> its images (sorted by name, so builds are reproducible). Unknown sub-folder
    names and a folder without any image are errors; an emotion folder without images is skipped."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"image folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name.lower() not in EMOTIONS]
    if unknown:
        raise InvalidInputError(f"{root}: sub-folders {unknown} are not emotions; expected one folder per emotion "
                                f"named one of: {', '.join(EMOTIONS)}")
    found: dict[str, list[LabelledImage]] = {}
    for folder in folders:
        emotion = folder.name.lower()
        if emotion in found:
            raise InvalidInputError(f"{root}: two folders for {emotion!r} (names are case-insensitive)")
        jsonl = jsonl_captions(folder)
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            log.warning("%s: no images, %s is left out of the bank", folder, emotion)
            continue
        found[emotion] = [_labelled(p, emotion, jsonl) for p in images]
    if not found:
        raise InvalidInputError(f"{root}: no images found; expected sub-folders named after emotions "
                                f"({', '.join(EMOTIONS)}) holding {'/'.join(sorted(IMAGE_SUFFIXES))} files")
    return {e: found[e] for e in EMOTIONS if e in found}
