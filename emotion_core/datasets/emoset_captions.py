"""Captions for EmoSet-118K images from their annotated attributes.

EmoSet ships no captions; each annotation JSON holds the image's scene, objects,
facial expression, human action, brightness and colourfulness (the six attributes
of its ``EmoSet.py`` / ``info.json``; any may be missing). The caption says what is
shown first, then how it looks: "person and balloon, people applauding, happy faces,
in an amusement park, bright, colourful".
"""

from __future__ import annotations

from typing import Any, Mapping

MAX_OBJECTS = 3
# (upper bound, words) over EmoSet's 0.0..1.0 brightness / colourfulness levels
BRIGHTNESS_WORDS = ((0.25, "dark"), (0.45, "dim"), (0.7, "softly lit"), (1.01, "bright"))
COLORFULNESS_WORDS = ((0.3, "muted colours"), (0.6, "moderately colourful"), (1.01, "colourful"))


def _words(value: Any) -> str:
    return str(value).replace("_", " ").replace("/", " ").strip().lower()


def _level(value: Any, table) -> str | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return next((words for bound, words in table if number < bound), None)


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def caption_from_attributes(annotation: Mapping[str, Any]) -> str:
    """The caption of one annotation; "" when it has none of the six attributes."""
    parts = []
    objects = annotation.get("object")
    if isinstance(objects, str):
        objects = [objects]
    if isinstance(objects, list):
        names = list(dict.fromkeys(_words(o) for o in objects if isinstance(o, str) and o.strip()))
        if names:
            parts.append(" and ".join(names[:MAX_OBJECTS]))
    if isinstance(annotation.get("human_action"), str) and annotation["human_action"].strip():
        parts.append(f"people {_words(annotation['human_action'])}")
    if isinstance(annotation.get("facial_expression"), str) and annotation["facial_expression"].strip():
        parts.append(f"{_words(annotation['facial_expression'])} faces")
    if isinstance(annotation.get("scene"), str) and annotation["scene"].strip():
        parts.append(f"at {_article(_words(annotation['scene']))}")
    for key, table in (("brightness", BRIGHTNESS_WORDS), ("colorfulness", COLORFULNESS_WORDS)):
        words = _level(annotation.get(key), table)
        if words and parts:  # looks alone do not make a caption
            parts.append(words)
    return ", ".join(parts)
