"""Does an element fit this subject? Hard rules from the slots, soft scores from MiniLM.

``clash`` is a contradiction (an outdoor forest for a bowl of ramen on a table,
a sunny sky for a night scene): such an element is never offered. ``unusable``
covers elements that do not apply (a face for a lighthouse, a bystander next to
a teacup). The soft scores are cosines: to the subject (does it belong with
what is drawn?) and to the emotion descriptions of the knowledge base (does the
phrase show the target on its own, more than any other emotion?).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .appraisal import UNKNOWN, SubjectAppraisal
from .knowledge import THING, Element, all_knowledge, scene_lexicon
from .sentence_encoder import SentenceEncoder

NEUTRAL_THING = "it"  # what {thing} reads as when a template is embedded once for every subject
_ABSTRACT = re.compile(r"\b(?:sense of|feeling|mood|atmosphere|made for|perfect for|full of)\b", re.IGNORECASE)
CONCRETE_FAMILIES = {"object": 1.0, "scene": 1.0, "weather": 0.9, "lighting": 0.9, "human_action": 0.9,
                     "facial_expression": 0.8, "colour": 0.6, "composition": 0.6}


def clash(element: Element, subject: SubjectAppraisal) -> str:
    """Why ``element`` contradicts the subject's setting, time or sky; "" when it does not."""
    slots = element.slots
    if subject.where != UNKNOWN and slots.where not in ("any", subject.where):
        return f"{slots.where} element for an {subject.where} subject"
    if slots.setting and subject.setting != UNKNOWN and subject.setting not in slots.setting:
        return f"puts the scene in {'/'.join(slots.setting)}, the subject is in {subject.setting}"
    if subject.time != UNKNOWN and slots.time not in ("any", subject.time):
        return f"{slots.time} element for a {subject.time} scene"
    if subject.sky != UNKNOWN and slots.sky not in ("any", subject.sky):
        return f"{slots.sky} sky for a {subject.sky} scene"
    return ""


def unusable(element: Element, subject: SubjectAppraisal) -> str:
    """Why ``element`` does not apply to this subject (without contradicting it); "" when it does."""
    slots = element.slots
    if slots.people == "subject" and subject.people != "person":
        return "describes a person's face or action; the subject is not a person"
    if slots.people == "adds" and subject.scale == "small" and not element.about_subject:
        return "adds a figure to a small close-up subject"
    if element.about_subject and not subject.thing:
        return "needs the subject's noun, which could not be read"
    if element.family == "scene" and subject.scene and not element.detail and not element.about_subject:
        return "sets a scene; the prompt already names its place"
    return ""


def phrase_for(element: Element, subject: SubjectAppraisal) -> str:
    """The element's drawable phrase for this subject."""
    if element.family == "scene" and subject.scene and element.detail:
        return element.detail
    return element.phrase.replace(THING, subject.thing)


def template_text(element: Element) -> str:
    return element.phrase.replace(THING, NEUTRAL_THING)


def concreteness(family: str, phrase: str) -> float:
    """How drawable a phrase is: things, places, light and weather over framing and palette; abstract words cost."""
    return CONCRETE_FAMILIES.get(family, 0.6) - (0.4 if _ABSTRACT.search(phrase) else 0.0)


@lru_cache(maxsize=1)
def embed_knowledge(encoder: SentenceEncoder) -> dict:
    """Every element template and emotion description embedded once: {"elements": {key: vec}, "descriptions": [8, d]}."""
    graphs = all_knowledge()
    elements = [e for k in graphs.values() for e in k.elements]
    vectors = encoder.embed([template_text(e) for e in elements])
    descriptions = encoder.embed([k.description for k in graphs.values()])
    prototypes = scene_lexicon()["prototypes"]
    encoder.embed([text for values in prototypes.values() for text in values.values()])
    return {"elements": {e.key: v for e, v in zip(elements, vectors)}, "descriptions": descriptions,
            "emotions": list(graphs)}


def emotion_margin(vector, emotion: str, cache: dict) -> float:
    """Cosine to ``emotion``'s description minus the best other one: > 0 when the phrase shows it most."""
    cosines = (cache["descriptions"] @ vector).tolist()
    index = cache["emotions"].index(emotion)
    return cosines[index] - max(c for i, c in enumerate(cosines) if i != index)


EMOTION_NAMES = re.compile(
    r"\b(?:amus\w*|awe\w*|contentment|excit\w*|anger|angry|disgust\w*|fear\w*|sad|sadly|sadness|saddened|emotion\w*|evok\w*)\b",
    re.IGNORECASE)


def names_emotion(phrase: str) -> bool:
    """The affective shortcut: the phrase says the emotion instead of showing it."""
    return bool(EMOTION_NAMES.search(phrase))
