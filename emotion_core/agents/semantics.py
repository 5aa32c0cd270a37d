"""Step 1 of the chain of concept: keep the semantics of the input prompt.

The subject and the scene of the prompt are extracted so every later step can
keep them verbatim. The prompt itself is never edited: affect words that
contradict the target emotion ("a sad dog" rewritten for amusement) are only
noted, so the appraisal can say so; the added phrases carry the target.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..errors import InvalidInputError
from .knowledge import all_knowledge

MAX_PROMPT_CHARS = 20_000  # longer is refused; shorter but over the token budget is cut at a clause (compose)

# A medium prefix: "a photo of", "an oil painting of", "portrait of", ...
_MEDIUM = re.compile(
    r"^(?:(?:a|an|the)\s+)?(?:[\w-]+\s+){0,2}"
    r"(?:photo|photograph|picture|image|painting|drawing|illustration|render|sketch|portrait|shot|still|poster|watercolou?r)"
    r"\s+of\s+",
    re.IGNORECASE,
)
# Prepositions that usually open the place of the scene.
_SCENE = re.compile(
    r"\s(?:in|at|on|inside|under|beneath|near|beside|by|through|across|along|among|over|during|behind|outside|around)\s",
    re.IGNORECASE,
)
# Nouns that make the subject a person, so expressions and actions attach to it.
PERSON_WORDS = frozenset("""
man men woman women person people boy boys girl girls child children kid kids baby babies toddler teenager
teen adult guy guys lady ladies gentleman family families couple friends crowd mother father mom dad
grandmother grandfather grandma grandpa son daughter brother sister bride groom student students worker
workers farmer chef doctor nurse soldier soldiers dancer dancers musician singer player players athlete
runner climber hiker traveller traveler tourist tourists fisherman sailor artist painter teacher king queen
prince princess knight wizard witch clown cowboy astronaut policeman firefighter monk priest he she
portrait selfie face
""".split())


@dataclass(frozen=True)
class Semantics:
    """What the rewrite must keep."""

    core: str  # the prompt, cleaned; the rewrite starts with it
    subject: str
    scene: str  # "" when the prompt names no place
    is_person: bool
    conflicting_words: tuple[str, ...]  # affect words of another emotion, kept verbatim but noted


def _clean(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be text, got {type(prompt).__name__}")
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in prompt)
    text = re.sub(r"\s+", " ", text).strip(" ,;.!")
    if not text:
        raise InvalidInputError("prompt is empty: describe what the image shows, e.g. 'a dog in a park'")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInputError(f"prompt is {len(text)} characters; at most {MAX_PROMPT_CHARS} can be rewritten")
    return text


def _conflicting_words(target: str) -> dict[str, str]:
    """Affect word -> its emotion, for every emotion other than the target."""
    return {w: e for e, k in all_knowledge().items() if e != target for w in k.affect_words}


def extract(prompt: str, target: str) -> Semantics:
    """Subject and scene of ``prompt``, for a rewrite toward ``target``."""
    core = _clean(prompt)
    conflicting = _conflicting_words(target)
    noted = tuple(w for w in re.findall(r"[\w'-]+", core) if w.lower() in conflicting)
    first_clause = core.split(",")[0].strip()
    medium = _MEDIUM.match(first_clause)
    body = first_clause[medium.end():] if medium else first_clause
    scene_match = _SCENE.search(body)
    subject = body[:scene_match.start()].strip() if scene_match else body
    scene = body[scene_match.start():].strip() if scene_match else ""
    words = {w.lower() for w in re.findall(r"[\w-]+", subject or body)}
    return Semantics(core=core, subject=subject or body, scene=scene, is_person=bool(words & PERSON_WORDS),
                     conflicting_words=noted)
