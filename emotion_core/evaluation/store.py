"""``RUN_DIR/rows.jsonl`` and its resume. Each process appends finished batches to its own
``rows.part<rank>.jsonl`` with one ``write`` per batch of whole lines; a line cut short by an
interrupt (no newline, or not JSON) is cut off before the next append and never read. The main
process merges the parts into ``rows.jsonl`` (in item order, one row per key, written beside and
renamed), so a rerun into the same RUN_DIR skips every row already written."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..atomic import temp_beside
from ..errors import InvalidInputError
from .items import EvalItem

ROWS = "rows.jsonl"
CONFIG = "config.json"
PART_GLOB = "rows.part*.jsonl"


def _complete_lines(path: Path) -> Iterator[tuple[str, str]]:
    """``(key, line)`` of each complete row in ``path``, read line by line."""
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):  # the last piece without a newline: unfinished
                return
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "key" in row:
                yield row["key"], line.decode("utf-8").rstrip("\n")


def read_rows(run_dir: Path) -> dict[str, str]:
    """Every complete row written so far (merged file, then parts) as its JSON line, by key."""
    rows: dict[str, str] = {}
    for path in [run_dir / ROWS, *sorted(run_dir.glob(PART_GLOB))]:
        rows.update(_complete_lines(path))
    return rows


def iter_rows(run_dir: Path) -> Iterator[dict]:
    """The merged rows, one at a time."""
    with open(run_dir / ROWS, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def check_config(run_dir: Path, config: dict) -> None:
    """A RUN_DIR is resumed only with the same critics and input; its config is written on first use."""
    path = run_dir / CONFIG
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != config:
            raise InvalidInputError(f"{run_dir} holds a run with other settings ({previous}); resume it with the "
                                    "same input and critics, or use a new --out")
        return
    write_text(path, json.dumps(config, indent=2) + "\n")


def strict(value):
    """``value`` with NaN and infinities as null (ESMI's S_emo can be NaN): rows are standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def dumps(row: dict) -> str:
    return json.dumps(strict(row), allow_nan=False)


def write_text(path: Path, text: str) -> None:
    """Whole file or nothing: written beside, then renamed over ``path``."""
    with temp_beside(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide reports from other users
        os.replace(tmp, path)


class PartWriter:
    """Appends whole rows to this process's part file."""

    def __init__(self, run_dir: Path, rank: int):
        self.path = run_dir / f"rows.part{rank}.jsonl"
        if self.path.is_file():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):  # an interrupted write: drop the unfinished line
                with open(self.path, "r+b") as handle:
                    handle.truncate(data.rfind(b"\n") + 1)

    def append(self, rows: Iterable[dict]) -> None:
        payload = "".join(dumps(row) + "\n" for row in rows).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)


def merge(run_dir: Path, items: Sequence[EvalItem]) -> None:
    """``rows.jsonl`` = the rows of ``items`` in item order (written beside, then renamed); the part
    files are removed."""
    found = read_rows(run_dir)
    missing = [item.label for item in items if item.key not in found]
    if missing:
        raise RuntimeError(f"{len(missing)} rows were not written (first: {missing[0]}); rerun to finish them")
    target = run_dir / ROWS
    with temp_beside(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for item in items:
                line = found.pop(item.key)
                row = json.loads(line)
                if row["index"] != item.index:  # the same image at another place of an edited manifest
                    row["index"] = item.index
                    line = dumps(row)
                handle.write(line + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    for part in run_dir.glob(PART_GLOB):
        part.unlink()
