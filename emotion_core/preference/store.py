"""Append preference pairs to a dataset folder without ever overwriting data.

- Every file is written to a temporary name in its folder and then *linked* to its final
  name (``os.link`` fails if the name exists, so a file is never replaced, even by a
  concurrent writer); the pair id is the next free number.
- ``pairs.jsonl`` is rewritten as a whole (old bytes + the new line) to a temporary file
  and renamed over the old one under a lock file, so a crash leaves either the old or the
  new file, never a torn line.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..atomic import all_or_nothing, link_new, temp_beside
from ..errors import InvalidInputError
from ..taxonomy import parse_emotion
from ..weights import save_safetensors
from .format import IMAGES_DIR, PAIRS_FILE, TOKENS_DIR, PreferencePair, VisualPromptRef

log = logging.getLogger(__name__)

LOCK_FILE = ".pairs.lock"
LOCK_TIMEOUT_S = 30.0
STALE_LOCK_S = 120.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
_ID = re.compile(r"^(\d{6,})_")


def safe_dataset_dir(root: str | os.PathLike, name: str) -> Path:
    """``root/name`` for a dataset name of letters, digits, ``_ - . space`` and ``/`` between such
    parts; anything that could leave ``root`` (``..``, absolute paths, drive letters, a
    symlink pointing out) is an error."""
    parts = [p for p in str(name).replace("\\", "/").split("/")]
    if not name or any(not _NAME.match(p) or p in (".", "..") or p.endswith(".") or len(p) > 200 for p in parts):
        shown = name if len(str(name)) <= 80 else f"{str(name)[:80]}..."
        raise InvalidInputError(f"dataset name {shown!r} must be folder names (at most 200 characters each) of letters, digits, '_', '-', '.' and "
                                "spaces, separated by '/', without '..'")
    base = Path(root).resolve()
    path = (base / Path(*parts)).resolve()
    if base not in path.parents:
        raise InvalidInputError(f"dataset name {name!r} points outside {base}")
    return path


class _Lock:
    """A lock file created exclusively (works on every OS); a stale one is broken with a warning."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "_Lock":
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return self
            except FileExistsError:
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age > STALE_LOCK_S:
                    log.warning("removing stale lock %s (%.0f s old)", self.path, age)
                    self.path.unlink(missing_ok=True)
                    continue
                if time.monotonic() > deadline:
                    raise InvalidInputError(f"{self.path} is held by another writer; try again") from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _link_new(write: Callable[[Path], None], final: Path) -> bool:
    """Write through ``write(tmp)`` and give it the name ``final`` unless that exists (False then)."""
    with temp_beside(final) as tmp:
        write(tmp)
        try:
            link_new(tmp, final)
        except FileExistsError:
            return False
        return True


class PreferenceStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _next_id(self) -> int:
        numbers = [int(m.group(1)) for p in (self.root / IMAGES_DIR).glob("*") if (m := _ID.match(p.name))]
        return max(numbers, default=0) + 1

    def add(self, chosen, rejected, prompt: str, target_emotion: str, negative_emotion: str | None = None,
            positive_visual=None, negative_visual=None, extra: Mapping[str, Any] | None = None) -> PreferencePair:
        """Save one pair. ``chosen``/``rejected`` are PIL images; visual prompts are ``VisualPrompt``s
        (their positive tokens are saved, as roles ``positive`` and ``negative_visual``)."""
        target = parse_emotion(target_emotion)
        negative = parse_emotion(negative_emotion) if negative_emotion else None
        if not isinstance(prompt, str):
            raise InvalidInputError("prompt must be text")
        images = self.root / IMAGES_DIR
        images.mkdir(parents=True, exist_ok=True)
        number = self._next_id()
        created: list[Path] = []  # this pair's files (its id is ours alone: os.link claimed it)
        with all_or_nothing(created, lambda: f"save a preference pair in {self.root}"):
            while True:
                pair_id = f"{number:06d}"
                chosen_path = images / f"{pair_id}_chosen.png"
                if _link_new(lambda tmp: chosen.save(tmp, format="PNG"), chosen_path):
                    break
                number += 1  # taken (by a concurrent writer): next number
            created.append(chosen_path)
            rejected_path = images / f"{pair_id}_rejected.png"
            if not _link_new(lambda tmp: rejected.save(tmp, format="PNG"), rejected_path):
                raise InvalidInputError(f"{rejected_path} already exists; the dataset folder is inconsistent")
            created.append(rejected_path)
            refs = self._save_tokens(pair_id, positive_visual, negative_visual)
            created.extend({ref.tokens for ref in refs if ref is not None})
            pair = PreferencePair(chosen_path, rejected_path, prompt, target, negative, *refs, id=pair_id,
                                  extra={"created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                      timespec="seconds"), **(extra or {})})
            self._append(pair.to_json(self.root))
        return pair

    def _save_tokens(self, pair_id: str, positive, negative) -> tuple[VisualPromptRef | None, VisualPromptRef | None]:
        prompts = {"positive": positive, "negative_visual": negative}
        tensors = {role: vp.tokens["positive"] for role, vp in prompts.items() if vp is not None}
        if not tensors:
            return None, None
        first = positive or negative
        if positive is not None and negative is not None and \
                (positive.family, positive.variant, positive.cross_dim) != (negative.family, negative.variant,
                                                                            negative.cross_dim):
            raise InvalidInputError("the positive and negative visual prompts were made with different adapters")
        folder = self.root / TOKENS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{pair_id}.safetensors"
        if path.exists():
            raise InvalidInputError(f"{path} already exists; the dataset folder is inconsistent")
        metadata = {"family": first.family, "variant": first.variant, "cross_dim": first.cross_dim,
                    "sources": {role: vp.source for role, vp in prompts.items() if vp is not None}}
        save_safetensors(tensors, path, metadata)
        return tuple(VisualPromptRef(tokens=path, role=role, source=vp.source) if vp is not None else None
                     for role, vp in prompts.items())

    def _append(self, row: Mapping[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
        pairs = self.root / PAIRS_FILE
        with _Lock(self.root / LOCK_FILE):
            old = pairs.read_bytes() if pairs.exists() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"  # a line cut by another tool: keep it, the reader skips it with a count
            with temp_beside(pairs) as tmp:
                with open(tmp, "wb") as handle:
                    handle.write(old + line)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, pairs)
