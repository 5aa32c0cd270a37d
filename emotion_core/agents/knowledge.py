"""The concept knowledge base: for each emotion, drawable concepts in EmoSet's
attribute families, read from ``emotion_core/data/concepts_<emotion>.json``.

The files are our own data. Each concept has a short name (what agents propose
and vote on, and what the negative prompt uses) and the visual phrase(s) a
diffusion model can draw; scenes and people-related families carry two forms
so the phrase can fit any subject (see ``concretise``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import ModelFormatError
from ..taxonomy import EMOTIONS, parse_emotion

FAMILIES: tuple[str, ...] = (
    "scene",
    "object",
    "colour",
    "lighting",
    "weather",
    "composition",
    "facial_expression",
    "human_action",
)
PEOPLE_FAMILIES = frozenset({"facial_expression", "human_action"})

# Phrase fields each family needs: a scene has a full setting and a background
# detail (when the prompt already names a place); people families have a form
# for a human subject and a bystander form for any other subject.
_FIELDS = {"scene": ("setting", "detail"), "facial_expression": ("person", "bystander"),
           "human_action": ("person", "bystander")}


@dataclass(frozen=True)
class Concept:
    emotion: str
    family: str
    name: str
    forms: tuple[tuple[str, str], ...]  # (form name, visual phrase)

    @property
    def key(self) -> str:
        return f"{self.emotion}:{self.family}:{self.name}"

    def form(self, name: str) -> str:
        return dict(self.forms)[name]

    @property
    def main_phrase(self) -> str:
        """The phrase used when nothing about the subject constrains the form."""
        return self.forms[0][1]


@dataclass(frozen=True)
class EmotionKnowledge:
    emotion: str
    description: str
    affect_words: frozenset[str]
    concepts: tuple[Concept, ...]


def _fields(family: str) -> tuple[str, ...]:
    return _FIELDS.get(family, ("phrase",))


def _parse(emotion: str, data: dict) -> EmotionKnowledge:
    where = f"concepts_{emotion}.json"
    if data.get("emotion") != emotion:
        raise ModelFormatError(f"{where}: 'emotion' must be {emotion!r}")
    concepts = []
    for i, item in enumerate(data.get("concepts", [])):
        family = item.get("family")
        if family not in FAMILIES:
            raise ModelFormatError(f"{where}: concept {i} has unknown family {family!r}")
        fields = _fields(family)
        if not isinstance(item.get("concept"), str) or any(not isinstance(item.get(f), str) for f in fields):
            raise ModelFormatError(f"{where}: concept {i} ({family}) needs 'concept' and {list(fields)}")
        concepts.append(Concept(emotion, family, item["concept"], tuple((f, item[f]) for f in fields)))
    return EmotionKnowledge(
        emotion=emotion,
        description=str(data.get("description", "")),
        affect_words=frozenset(w.lower() for w in data.get("affect_words", [])),
        concepts=tuple(concepts),
    )


@lru_cache(maxsize=None)
def knowledge(emotion: str) -> EmotionKnowledge:
    """The knowledge base of one emotion (read once per process)."""
    emotion = parse_emotion(emotion)
    # The parent package by its import name: ComfyUI imports this repo under its folder name.
    text = resources.files(__package__.rpartition(".")[0]).joinpath("data", f"concepts_{emotion}.json").read_text(encoding="utf-8")
    return _parse(emotion, json.loads(text))


def all_knowledge() -> dict[str, EmotionKnowledge]:
    return {e: knowledge(e) for e in EMOTIONS}
