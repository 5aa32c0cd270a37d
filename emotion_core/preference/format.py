"""The preference dataset format.

A dataset is a folder::

    pairs.jsonl              one JSON object per line (a pair), appended, never rewritten in place
    images/<id>_chosen.png   the preferred image
    images/<id>_rejected.png the rejected one
    visual_prompts/<id>.safetensors   visual prompt tokens, when the pair was made with them

A line::

    {"id": "000003", "chosen": "images/000003_chosen.png", "rejected": "images/000003_rejected.png",
     "prompt": "a harbour at dusk", "target_emotion": "awe", "negative_emotion": "fear",
     "visual_prompts": {"positive": REF | null, "negative": REF | null}, "source": "comfyui", "created": ISO-8601}

A visual prompt reference ``REF`` is either ``{"tokens": "visual_prompts/<id>.safetensors",
"role": "positive" | "negative_visual", "source": "bank:awe"}`` (image tokens of the adapter
the pair was made with) or ``{"images": ["relative/path.png", ...]}`` (pictures to encode).
Paths are relative to the dataset folder and must stay inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import InvalidInputError
from ..taxonomy import parse_emotion

PAIRS_FILE = "pairs.jsonl"
IMAGES_DIR = "images"
TOKENS_DIR = "visual_prompts"
VISUAL_ROLES = ("positive", "negative")


@dataclass(frozen=True)
class VisualPromptRef:
    """Where a branch's visual prompt comes from: a tokens file (with the role inside it) or images."""

    tokens: Path | None = None
    role: str | None = None
    images: tuple[Path, ...] = ()
    source: str | None = None

    def to_json(self, root: Path) -> dict[str, Any]:
        if self.tokens is not None:
            return {"tokens": _relative(self.tokens, root), "role": self.role, "source": self.source}
        return {"images": [_relative(p, root) for p in self.images]}


@dataclass(frozen=True)
class PreferencePair:
    chosen: Path
    rejected: Path
    prompt: str
    target_emotion: str
    negative_emotion: str | None
    positive_visual: VisualPromptRef | None = None
    negative_visual: VisualPromptRef | None = None
    id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self, root: Path) -> dict[str, Any]:
        refs = {"positive": self.positive_visual, "negative": self.negative_visual}
        return {"id": self.id, "chosen": _relative(self.chosen, root), "rejected": _relative(self.rejected, root),
                "prompt": self.prompt, "target_emotion": self.target_emotion,
                "negative_emotion": self.negative_emotion,
                "visual_prompts": {k: (v.to_json(root) if v else None) for k, v in refs.items()}, **self.extra}


def _relative(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def inside(root: Path, relative: Any, what: str) -> Path:
    """``root/relative`` if it is a relative path that stays inside ``root``; an error otherwise."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        raise InvalidInputError(f"{what} must be a relative path inside the dataset, got {relative!r}")
    base = root.resolve()
    path = (base / relative).resolve()
    if base not in path.parents:
        raise InvalidInputError(f"{what} {relative!r} points outside the dataset folder")
    return path


def _existing(root: Path, relative: Any, what: str) -> Path:
    path = inside(root, relative, what)
    if not path.is_file():
        raise InvalidInputError(f"{what} {relative!r} does not exist")
    return path


def _ref(root: Path, value: Any, what: str) -> VisualPromptRef | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be an object or null")
    if "tokens" in value:
        role = value.get("role")
        if role not in ("positive", "negative_visual"):
            raise InvalidInputError(f"{what}.role must be 'positive' or 'negative_visual', got {role!r}")
        return VisualPromptRef(tokens=_existing(root, value["tokens"], f"{what}.tokens"), role=role,
                               source=value.get("source"))
    images = value.get("images")
    if not isinstance(images, list) or not images:
        raise InvalidInputError(f"{what} needs 'tokens' or a non-empty 'images' list")
    return VisualPromptRef(images=tuple(_existing(root, p, f"{what}.images") for p in images))


def parse_pair(root: Path, row: Any) -> PreferencePair:
    """One JSONL row -> a pair whose files exist; ``InvalidInputError`` saying what is wrong otherwise."""
    if not isinstance(row, Mapping):
        raise InvalidInputError(f"a row must be a JSON object, got {type(row).__name__}")
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInputError("'prompt' must be a string")
    target = parse_emotion(row.get("target_emotion"))
    negative = row.get("negative_emotion")
    negative = parse_emotion(negative) if negative is not None else None
    refs = row.get("visual_prompts") or {}
    if not isinstance(refs, Mapping):
        raise InvalidInputError("'visual_prompts' must be an object")
    known = {"id", "chosen", "rejected", "prompt", "target_emotion", "negative_emotion", "visual_prompts"}
    return PreferencePair(
        chosen=_existing(root, row.get("chosen"), "'chosen'"), rejected=_existing(root, row.get("rejected"),
                                                                                   "'rejected'"),
        prompt=prompt, target_emotion=target, negative_emotion=negative,
        positive_visual=_ref(root, refs.get("positive"), "visual_prompts.positive"),
        negative_visual=_ref(root, refs.get("negative"), "visual_prompts.negative"),
        id=str(row.get("id", "")), extra={k: v for k, v in row.items() if k not in known})
