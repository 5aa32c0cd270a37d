"""The emotion report a saved image carries, and writing PNGs and JSON reports whole, never
replacing a file unless asked.

The report is JSON in the PNG text chunk ``emotion_director`` (the key the CLI's
``generate`` uses too), so a shared image says what it was made to evoke: target,
strength, seed, the critic's 8-way distribution of the image, the source image's
distribution and the Emotion Critic Loop's outcome. Unknown parts are ``null``. Only
emotions, numbers and the loop's verdict words go in: never paths or secrets.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .atomic import link_new, temp_beside
from .critic_loop.summary import summary
from .direction import EmotionDirection, validate_distribution
from .errors import InvalidInputError
from .images import to_pil
from .taxonomy import EMOTIONS, as_dict, parse_emotion

PNG_METADATA_KEY = "emotion_director"
GENERATOR = "Emotion Director"
SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets go up to 2^64-1
MAX_NAME_ATTEMPTS = 10000


def _loop_error(message: str) -> InvalidInputError:
    return InvalidInputError(f"report: {message}; connect the 'report' output of an Emotion Critic Loop node")


def _number(value, name: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _loop_error(f"{name} must be a finite number, got {value!r}")
    return float(value)


def parse_loop_report(text: str) -> dict:
    """The loop's part of the image report, from the Emotion Critic Loop's JSON report (its
    ``summary``, checked): target, passes run, why it stopped and the best candidate's seed,
    denoise, SSIM and target probability."""
    if not isinstance(text, str) or not text.strip():
        raise _loop_error("it is empty")
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise _loop_error(f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(report, dict):
        raise _loop_error(f"expected a JSON object, got {type(report).__name__}")
    if "direction" in report and "best" not in report:
        raise InvalidInputError("report: this is the Emotion Direction node's report; connect that node's "
                                "'direction' output to 'direction' instead, or the Emotion Critic Loop's 'report' here")
    missing = [key for key in ("target", "passes", "stopped", "best") if key not in report]
    if missing:
        raise _loop_error(f"not an Emotion Critic Loop report (missing {', '.join(missing)})")
    best = report["best"]
    if not isinstance(best, dict) or any(key not in best for key in ("seed", "denoise", "ssim")):
        raise _loop_error("its 'best' entry lacks the best candidate's seed, denoise and ssim")
    outcome = summary(report)
    try:
        target = parse_emotion(outcome["target"])
    except InvalidInputError as exc:
        raise _loop_error(f"target: {exc}") from None
    passes = outcome["passes"]
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise _loop_error(f"passes must be a whole number >= 1, got {passes!r}")
    if not isinstance(outcome["stopped"], str):
        raise _loop_error(f"stopped must be text, got {outcome['stopped']!r}")
    try:  # no seed: the pick is the source itself (EmoEditor's pick when nothing was accepted)
        seed = None if outcome["best_seed"] is None else check_seed(outcome["best_seed"], "best seed")
    except InvalidInputError as exc:
        raise _loop_error(str(exc)) from None
    return {
        "target": target,
        "passes": passes,
        "stopped": outcome["stopped"],
        "best_seed": seed,
        "best_denoise": _number(outcome["best_denoise"], "best denoise"),
        "best_ssim": _number(outcome["best_ssim"], "best ssim", allow_none=True),
        "best_target_probability": _number(outcome["best_target_probability"], "best target_probability",
                                           allow_none=True),
    }


def check_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidInputError(f"{name} must be a whole number between 0 and {SEED_MAX}, got {seed!r}")
    return seed


def build_report(
    direction: EmotionDirection | None = None,
    distribution: Sequence[float] | None = None,
    loop: dict | None = None,
    seed: int | None = None,
) -> dict:
    """One image's report. ``distribution``: the critic's 8 probabilities (canonical order) for
    this image; ``loop``: ``parse_loop_report``'s summary. The target comes from the direction,
    else the loop; the seed is ``seed``, else the loop's best candidate's."""
    if direction is not None and not isinstance(direction, EmotionDirection):
        raise InvalidInputError(f"direction: expected an EMOTION_DIRECTION, got {type(direction).__name__}")
    probabilities = None if distribution is None else validate_distribution(distribution, "critic distribution")
    if seed is not None:
        seed = check_seed(seed)
    elif loop is not None:
        seed = loop["best_seed"]
    if direction is not None:
        target, targets = direction.primary, {e: float(w) for e, w in direction.target.items()}
    elif loop is not None:
        target, targets = loop["target"], None
    else:
        target, targets = None, None
    return {
        "target": target,
        "targets": targets,
        "strength": None if direction is None else float(direction.strength),
        "seed": seed,
        "distribution": None if probabilities is None else as_dict(probabilities),
        "top": None if probabilities is None else EMOTIONS[max(range(len(EMOTIONS)), key=lambda i: (probabilities[i], -i))],
        "source_distribution": None if direction is None or direction.source is None else as_dict(direction.source),
        "loop": None if loop is None else dict(loop),
        "generator": GENERATOR,
    }


def report_json(report: dict) -> str:
    """Strict JSON (no NaN) so every reader can parse the chunk."""
    return json.dumps(report, allow_nan=False)


def write_new_png(image: Image.Image, path: str | os.PathLike, text_chunks: Mapping[str, str],
                  compress_level: int = 4, replace: bool = False) -> None:
    """Write ``image`` with ``text_chunks`` (key -> text) to ``path`` only if no file is there:
    encoded in full beside it, then linked into place, so readers never see half a file and an
    existing file is never replaced (``FileExistsError``). With ``replace`` the full file is
    renamed over an existing one instead (still never half-written)."""
    path = Path(path)
    info = PngInfo()
    for key, text in text_chunks.items():
        info.add_text(key, text)
    with temp_beside(path) as tmp:
        try:
            image.save(tmp, format="PNG", pnginfo=info, compress_level=compress_level)
        except OSError as exc:  # a full disk says nothing of where: name the file
            raise OSError(f"cannot write {path}: {exc}") from exc
        _put_in_place(tmp, path, replace)


def write_metadata_png(image: torch.Tensor, path: str | os.PathLike, metadata: Mapping, replace: bool = False) -> None:
    """One IMAGE with a run's settings as JSON (sorted keys) in the ``emotion_director`` chunk,
    as the CLI's ``generate`` and ``edit`` write it; the folder is made if needed. Written whole,
    and an existing file is kept (``FileExistsError``) unless ``replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_new_png(to_pil(image), path, {PNG_METADATA_KEY: json.dumps(metadata, sort_keys=True)}, compress_level=6,
                  replace=replace)


def write_new_json(path: str | os.PathLike, data, replace: bool = False) -> None:
    """``data`` as indented JSON (e.g. a loop report), whole or not at all, in a folder made if
    needed; like ``write_new_png``, an existing file is kept (``FileExistsError``) unless ``replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        _put_in_place(tmp, path, replace)


def _put_in_place(tmp: Path, path: Path, replace: bool) -> None:
    """The finished temp file takes ``path``: renamed over it with ``replace``, else only if the name is free."""
    if replace:
        os.replace(tmp, path)
    else:
        link_new(tmp, path)


def write_numbered_png(image: Image.Image, folder: str | os.PathLike, name: Callable[[int], str], counter: int,
                       text_chunks: Mapping[str, str], compress_level: int = 4) -> tuple[str, int]:
    """Write to ``folder/name(counter)``, moving to the next counter while a file has the name
    (another save got there first). Returns the file name and the counter used."""
    for attempt in range(counter, counter + MAX_NAME_ATTEMPTS):
        try:
            write_new_png(image, Path(folder) / name(attempt), text_chunks, compress_level)
            return name(attempt), attempt
        except FileExistsError:
            continue
    raise InvalidInputError(f"{MAX_NAME_ATTEMPTS} file names from {name(counter)} on are taken in the output folder; "
                            "choose another filename_prefix")
