"""Step 2 of the chain: appraise the subject — where it is, how big, who is
there, what hour and weather — so every element chosen later fits *this* scene.

Words of the prompt decide a slot first (``data/scene_lexicon.json``: "table"
is indoors, "cliff" outdoors in nature); when no word decides, MiniLM compares
the subject with a prototype sentence per value and takes a clear winner
(margin ``PROTOTYPE_MARGIN``), else the slot stays unknown and constrains nothing.
Each decided slot keeps its evidence for the transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .knowledge import scene_lexicon
from .semantics import PERSON_WORDS, Semantics
from .sentence_encoder import SentenceEncoder

PROTOTYPE_MARGIN = 0.04
UNKNOWN = "unknown"
_ARTICLES = {"a", "an", "the", "some", "two", "three", "one", "this", "that", "my", "his", "her", "their", "our"}
_CONNECTORS = {"with", "and", "while", "who", "that", "which", "holding", "wearing"}
MAX_THING_WORDS = 4


@dataclass(frozen=True)
class SubjectAppraisal:
    """The subject's slots: where, setting, scale, time, sky, people, type, and its own noun (``thing``)."""

    subject: str
    scene: str
    where: str = UNKNOWN  # indoor | outdoor
    setting: str = UNKNOWN  # interior | water | urban | nature
    scale: str = "medium"  # small | medium | large
    time: str = UNKNOWN  # day | night
    sky: str = UNKNOWN  # clear | wet | snow
    people: str = "none"  # person | none
    subject_type: str = "object"
    thing: str = ""  # the subject's noun for {thing}; "" when it cannot be read (other languages, bare words)
    evidence: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"subject": self.subject, "scene": self.scene, "where": self.where, "setting": self.setting,
                "scale": self.scale, "time": self.time, "sky": self.sky, "people": self.people,
                "subject_type": self.subject_type, "thing": self.thing, "evidence": dict(self.evidence)}


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def _by_words(slot: str, words: list[str], lexicon: dict) -> tuple[str, str] | None:
    """The first value of ``slot`` whose word list holds a word of ``words`` (scene words first)."""
    for word in words:
        for value, vocabulary in lexicon[slot].items():
            if word in vocabulary:
                return value, f"word {word!r}"
    return None


def _by_prototype(slot: str, text: str, encoder: SentenceEncoder | None, lexicon: dict) -> tuple[str, str] | None:
    prototypes = lexicon["prototypes"].get(slot)
    if encoder is None or not prototypes:
        return None
    values = list(prototypes)
    vectors = encoder.embed([text] + [prototypes[v] for v in values])
    cosines = sorted(((float(vectors[i + 1] @ vectors[0]), v) for i, v in enumerate(values)), reverse=True)
    if cosines[0][0] - cosines[1][0] < PROTOTYPE_MARGIN:
        return None
    return cosines[0][1], f"MiniLM {cosines[0][0]:.2f} vs {cosines[1][0]:.2f}"


def subject_noun(subject: str, english: bool) -> str:
    """The subject without article and trailing clause: 'an old man reading a paper' -> 'old man'."""
    if not english:
        return ""
    words = subject.split()
    while words and words[0].lower() in _ARTICLES:
        words = words[1:]
    for i, word in enumerate(words):
        if i and (word.lower() in _CONNECTORS or word.lower().endswith("ing")):
            words = words[:i]
            break
    words = [w.strip(",;.") for w in words]
    return " ".join(words[-MAX_THING_WORDS:]) if words else ""


def _is_english(words: list[str], lexicon: dict) -> bool:
    known = set(_ARTICLES) | set(PERSON_WORDS) | {"of", "in", "on", "at", "by", "under", "with"}
    for slot in ("where", "setting", "scale", "subject_type"):
        for vocabulary in lexicon[slot].values():
            known.update(vocabulary)
    return any(w in known for w in words)


def appraise(semantics: Semantics, encoder: SentenceEncoder | None) -> SubjectAppraisal:
    """The subject's slots, from its words first and MiniLM second."""
    lexicon = scene_lexicon()
    scene_words, subject_words = _words(semantics.scene), _words(semantics.subject)
    words = scene_words + subject_words + [w for w in _words(semantics.core) if w not in scene_words + subject_words]
    text = " ".join(p for p in (semantics.subject, semantics.scene) if p)
    slots: dict[str, str] = {}
    evidence: dict[str, str] = {}
    for slot in ("where", "setting", "time", "sky"):
        found = _by_words(slot, words, lexicon) or _by_prototype(slot, text, encoder, lexicon)
        if found:
            slots[slot], evidence[slot] = found
    if slots.get("setting") == "interior" and "where" not in slots:
        slots["where"], evidence["where"] = "indoor", "setting is an interior"
    if slots.get("where") == "indoor" and slots.get("setting") not in (None, "interior"):
        del slots["setting"]  # a prototype's guess never overrules a word
    scale = _by_words("scale", subject_words, lexicon) or _by_words("scale", words, lexicon)
    if scale:
        slots["scale"], evidence["scale"] = scale
    if semantics.is_person:
        slots["people"], slots["subject_type"], evidence["people"] = "person", "person", "a person word"
    else:
        kind = _by_words("subject_type", subject_words, lexicon)
        if kind:
            slots["subject_type"], evidence["subject_type"] = kind
    thing = subject_noun(semantics.subject, _is_english(subject_words, lexicon))
    if len(thing) > 40:
        thing = ""
    return SubjectAppraisal(semantics.subject, semantics.scene, thing=thing, evidence=evidence, **slots)
