"""What an evaluation scores: a list of ``EvalItem`` (image, target emotion, optional source and
prompt), read from an EmoSet-style folder (``<emotion>/`` subfolders, or EmoSet-118K's
``image/<emotion>/`` with its ``train/val/test.json`` split lists) or from a CSV/JSONL manifest
with ``image,target[,source,prompt]`` columns whose paths stay inside the manifest's folder."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
MANIFEST_SUFFIXES = (".csv", ".jsonl")
EMOSET_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class EvalItem:
    """One image to score; ``key`` identifies its row in ``rows.jsonl`` (resume skips it)."""

    index: int
    image: Path
    target: str
    source: Path | None = None
    prompt: str | None = None
    label: str = ""  # the image's name in the run (relative path), shown in tables and the report

    @property
    def key(self) -> str:
        return f"{self.label}|{self.target}|{self.source or ''}"


def _emotion(name: str, where: str) -> str:
    value = str(name).strip().lower()
    if value not in EMOTIONS:
        raise InvalidInputError(f"{where}: unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return value


def _inside(root: Path, text: str, where: str) -> Path:
    """``text`` as a path inside ``root`` (relative to it); anything that leaves it is an error."""
    if not str(text).strip():
        raise InvalidInputError(f"{where}: empty path")
    path = (root / text).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidInputError(f"{where}: {text!r} is outside the manifest's folder {root}; "
                                "manifest paths must stay inside it")
    return path


def _from_tree(root: Path) -> list[EvalItem]:
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    emotion_folders = [(e, folders[e]) for e in EMOTIONS if e in folders]
    if not emotion_folders and (root / "image").is_dir():
        return _from_tree(root / "image")  # EmoSet-118K's layout: image/<emotion>/
    items: list[EvalItem] = []
    for emotion, folder in emotion_folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            items.append(EvalItem(len(items), path, emotion, label=path.relative_to(root).as_posix()))
    if not items:
        raise InvalidInputError(f"{root}: no images to evaluate; expected <emotion>/ subfolders "
                                f"({', '.join(EMOTIONS)}) holding {'/'.join(sorted(IMAGE_SUFFIXES))} files, "
                                "or a CSV/JSONL manifest")
    return items


def _from_split(root: Path, split: str) -> list[EvalItem]:
    """EmoSet-118K's ``<split>.json``: ``[emotion, id, image path, annotation path]`` entries."""
    path = root / f"{split}.json"
    if not path.is_file():
        raise InvalidInputError(f"--split {split}: {path} not found (EmoSet-118K keeps train.json, val.json and "
                                "test.json next to image/)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a readable EmoSet split list ({exc})") from exc
    items = []
    for number, entry in enumerate(entries if isinstance(entries, list) else [None]):
        where = f"{path.name} entry {number}"
        if not isinstance(entry, list) or len(entry) < 3:
            raise InvalidInputError(f"{where}: expected [emotion, id, image path, annotation path]")
        image = _inside(root, entry[2], where)
        items.append(EvalItem(number, image, _emotion(entry[0], where), label=str(entry[2])))
    if not items:
        raise InvalidInputError(f"{path}: the split list is empty")
    return items


def _manifest_records(path: Path) -> list[tuple[str, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read manifest {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"image", "target"} <= set(reader.fieldnames):
            raise InvalidInputError(f"{path}: a CSV manifest needs a header with image,target[,source,prompt] "
                                    f"columns, found {reader.fieldnames}")
        return [(f"{path.name} line {n}", row) for n, row in enumerate(reader, start=2)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path.name} line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InvalidInputError(f"{path.name} line {number}: expected an object with image and target")
        records.append((f"{path.name} line {number}", record))
    return records


def _from_manifest(path: Path) -> list[EvalItem]:
    root = path.parent
    items = []
    for where, record in _manifest_records(path):
        if not record.get("image") or not record.get("target"):
            raise InvalidInputError(f"{where}: image and target are required")
        source = record.get("source") or None
        items.append(EvalItem(len(items), _inside(root, record["image"], where), _emotion(record["target"], where),
                              _inside(root, source, where) if source else None, record.get("prompt") or None,
                              label=str(record["image"])))
    if not items:
        raise InvalidInputError(f"{path}: the manifest lists no images")
    return items


def read_items(location: str | Path, split: str | None = None) -> list[EvalItem]:
    """The items of a folder, an EmoSet split or a manifest, in a fixed order (row indices)."""
    location = Path(location)
    if not location.exists():
        raise InvalidInputError(f"not found: {location}")
    if split is not None:
        if split not in EMOSET_SPLITS:
            raise InvalidInputError(f"--split must be one of {EMOSET_SPLITS}, got {split!r}")
        if not location.is_dir():
            raise InvalidInputError("--split reads an EmoSet-118K folder (with train/val/test.json), not a file")
        return _from_split(location, split)
    if location.is_dir():
        return _from_tree(location)
    if location.suffix.lower() not in MANIFEST_SUFFIXES:
        raise InvalidInputError(f"{location.name}: expected a folder or a .csv/.jsonl manifest")
    items = _from_manifest(location)
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise InvalidInputError(f"{location.name}: the same image, target and source appear twice ({duplicate})")
    return items
