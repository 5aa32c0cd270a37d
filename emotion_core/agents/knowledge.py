"""The concept graph: for each emotion, appraisals -> abstract concepts ->
concrete visual elements, read from ``emotion_core/data/concepts_<emotion>.json``
(format: ``docs/concept_graph.md``).

An appraisal names what in a scene could carry the emotion (its setting, scale,
people, objects, time, weather, light, colour, framing). Each concept under it
is an abstract idea (awe -> "light from above") and each element a drawable
phrase with slots saying where it can go (indoor/outdoor, which setting, time of
day, sky, whether it adds people or describes the subject person). A phrase
may contain ``{thing}``: the subject's own noun, so the element is about *this*
subject ("tall windows pouring light over the {thing}").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import ModelFormatError
from ..taxonomy import EMOTIONS, parse_emotion

SCHEMA = "emotion-director/concept-graph/1"
FAMILIES: tuple[str, ...] = (
    "scene", "object", "colour", "lighting", "weather", "composition", "facial_expression", "human_action",
)
PEOPLE_FAMILIES = frozenset({"facial_expression", "human_action"})
ASPECTS: tuple[str, ...] = ("setting", "scale", "people", "objects", "time", "weather", "light", "colour", "framing")
SLOT_VALUES = {
    "where": ("indoor", "outdoor", "any"),
    "time": ("day", "night", "any"),
    "sky": ("clear", "wet", "snow", "any"),
    "people": ("none", "subject", "adds"),  # adds a figure / describes the subject person / no people
}
SETTINGS = ("interior", "water", "urban", "nature")
THING = "{thing}"


@dataclass(frozen=True)
class Slots:
    where: str = "any"
    setting: tuple[str, ...] = ()  # the kinds of place the element puts into the picture; () = none
    time: str = "any"
    sky: str = "any"
    people: str = "none"


@dataclass(frozen=True)
class Element:
    emotion: str
    aspect: str
    concept: str
    family: str
    name: str  # short name: what the negative prompt uses
    phrase: str  # may hold {thing}
    slots: Slots
    detail: str = ""  # scene elements: the background form used when the prompt already names a place

    @property
    def key(self) -> str:
        return f"{self.emotion}:{self.name}"

    @property
    def about_subject(self) -> bool:
        return THING in self.phrase

    def texts(self) -> tuple[str, ...]:
        return (self.phrase, self.detail) if self.detail else (self.phrase,)


@dataclass(frozen=True)
class Concept:
    aspect: str
    name: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class Appraisal:
    aspect: str
    question: str
    concepts: tuple[Concept, ...]


@dataclass(frozen=True)
class EmotionKnowledge:
    emotion: str
    description: str
    affect_words: frozenset[str]
    appraisals: tuple[Appraisal, ...]

    @property
    def elements(self) -> tuple[Element, ...]:
        return tuple(e for a in self.appraisals for c in a.concepts for e in c.elements)


def _text(where: str, item: dict, field: str, required: bool = True) -> str:
    value = item.get(field, "")
    if (required and not value) or not isinstance(value, str):
        raise ModelFormatError(f"{where}: {field!r} must be a non-empty string")
    return value


def _slots(where: str, data: object) -> Slots:
    if not isinstance(data, dict):
        raise ModelFormatError(f"{where}: 'slots' must be an object")
    unknown = set(data) - {*SLOT_VALUES, "setting"}
    if unknown:
        raise ModelFormatError(f"{where}: unknown slots {sorted(unknown)}; expected {sorted({*SLOT_VALUES, 'setting'})}")
    for slot, values in SLOT_VALUES.items():
        if data.get(slot, values[-1] if slot != "people" else "none") not in values:
            raise ModelFormatError(f"{where}: slot {slot!r} is {data.get(slot)!r}; expected one of {list(values)}")
    setting = data.get("setting", [])
    if not isinstance(setting, list) or any(s not in SETTINGS for s in setting):
        raise ModelFormatError(f"{where}: slot 'setting' must be a list of {list(SETTINGS)}")
    return Slots(data.get("where", "any"), tuple(setting), data.get("time", "any"), data.get("sky", "any"),
                 data.get("people", "none"))


def _element(where: str, emotion: str, aspect: str, concept: str, item: dict) -> Element:
    family = item.get("family")
    if family not in FAMILIES:
        raise ModelFormatError(f"{where}: unknown family {family!r}; expected one of {list(FAMILIES)}")
    phrase = _text(where, item, "phrase")
    slots = _slots(where, item.get("slots", {}))
    if slots.people == "subject" and THING in phrase:
        raise ModelFormatError(f"{where}: a phrase about the subject person cannot also name it with {THING}")
    return Element(emotion, aspect, concept, family, _text(where, item, "name"), phrase, slots,
                   _text(where, item, "detail", required=False))


def parse_graph(emotion: str, data: dict) -> EmotionKnowledge:
    """The graph of one emotion; ``ModelFormatError`` naming the first thing that is wrong."""
    where = f"concepts_{emotion}.json"
    if data.get("schema") != SCHEMA:
        raise ModelFormatError(f"{where}: 'schema' must be {SCHEMA!r}")
    if data.get("emotion") != emotion:
        raise ModelFormatError(f"{where}: 'emotion' must be {emotion!r}")
    appraisals = []
    for i, appraisal in enumerate(data.get("appraisals") or []):
        aspect = appraisal.get("aspect")
        if aspect not in ASPECTS:
            raise ModelFormatError(f"{where}: appraisal {i} has unknown aspect {aspect!r}; expected one of {list(ASPECTS)}")
        concepts = []
        for j, concept in enumerate(appraisal.get("concepts") or []):
            name = _text(f"{where} {aspect} concept {j}", concept, "concept")
            elements = tuple(_element(f"{where} {aspect}/{name} element {k}", emotion, aspect, name, item)
                             for k, item in enumerate(concept.get("elements") or []))
            if not elements:
                raise ModelFormatError(f"{where}: concept {name!r} has no elements")
            concepts.append(Concept(aspect, name, elements))
        appraisals.append(Appraisal(aspect, _text(f"{where} {aspect}", appraisal, "question"), tuple(concepts)))
    if not appraisals:
        raise ModelFormatError(f"{where}: no appraisals")
    names = [e.name for a in appraisals for c in a.concepts for e in c.elements]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelFormatError(f"{where}: element names must be unique; repeated: {repeated}")
    return EmotionKnowledge(emotion, _text(where, data, "description"),
                            frozenset(w.lower() for w in data.get("affect_words", [])), tuple(appraisals))


def _data_text(name: str) -> str:
    # The parent package by its import name: ComfyUI imports this repo under its folder name.
    return resources.files(__package__.rpartition(".")[0]).joinpath("data", name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def knowledge(emotion: str) -> EmotionKnowledge:
    """The concept graph of one emotion (read once per process)."""
    emotion = parse_emotion(emotion)
    return parse_graph(emotion, json.loads(_data_text(f"concepts_{emotion}.json")))


@lru_cache(maxsize=1)
def scene_lexicon() -> dict:
    """Words and prototypes the subject appraisal reads (``data/scene_lexicon.json``)."""
    return json.loads(_data_text("scene_lexicon.json"))


def all_knowledge() -> dict[str, EmotionKnowledge]:
    return {e: knowledge(e) for e in EMOTIONS}
