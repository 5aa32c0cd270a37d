"""What one rewrite knows about its subject, shared by every agent and both rounds:
the graph elements that fit (with why the others do not), and MiniLM scores of
any phrase against the subject and the emotion descriptions.

Graph elements are embedded once per process (as templates, ``{thing}`` read as
"it"), so a builtin rewrite embeds only its subject; LLM phrases are embedded
when they are critiqued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fit import clash, embed_knowledge, emotion_margin, phrase_for, unusable
from .knowledge import Element, knowledge, scene_lexicon
from .proposals import AgentRequest
from .sentence_encoder import SentenceEncoder

FIT_GAIN = 4.0  # a cosine gap of 0.1 to the subject weighs like a 1.5x lean
EMOTION_GAIN = 10.0
SUBJECT_BONUS = 1.0  # an element that names the subject is about this scene, not any scene


@dataclass(frozen=True)
class Candidate:
    element: Element
    phrase: str
    fit: float
    margin: float

    @property
    def quality(self) -> float:
        return FIT_GAIN * self.fit + EMOTION_GAIN * self.margin + (SUBJECT_BONUS if self.element.about_subject else 0.0)


@dataclass
class RewriteContext:
    request: AgentRequest
    encoder: SentenceEncoder | None
    candidates: list[Candidate] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # element name -> why it was not offered
    _cache: dict | None = None
    _subject_vector: object = None

    @classmethod
    def build(cls, request: AgentRequest, encoder: SentenceEncoder | None) -> "RewriteContext":
        context = cls(request, encoder)
        if encoder is not None:
            context._cache = embed_knowledge(encoder)
            text = " ".join(p for p in (request.semantics.subject, request.semantics.scene) if p)
            context._subject_vector = encoder.embed([text])[0]
        for element in knowledge(request.emotion).elements:
            reason = clash(element, request.subject) or unusable(element, request.subject)
            if reason:
                context.excluded[element.name] = reason
                continue
            vector = context._cache["elements"][element.key] if context._cache else None
            fit, margin = context._scores(vector)
            context.candidates.append(Candidate(element, phrase_for(element, request.subject), fit, margin))
        return context

    def _scores(self, vector) -> tuple[float, float]:
        if vector is None or self._cache is None:
            return 0.0, 0.0
        return float(vector @ self._subject_vector), emotion_margin(vector, self.request.emotion, self._cache)

    def scores(self, phrase: str, element: Element | None) -> tuple[float, float]:
        """(fit to the subject, emotion margin) of a phrase; graph elements use their cached template."""
        if self._cache is None:
            return 0.0, 0.0
        if element is not None:
            return self._scores(self._cache["elements"][element.key])
        return self._scores(self.encoder.embed([phrase])[0])


def phrase_clash(phrase: str, context: RewriteContext) -> str:
    """A free phrase (an LLM's) that names a place indoors for an outdoor subject or the reverse: why, or ""."""
    subject = context.request.subject
    words = set(re.findall(r"[\w'-]+", phrase.lower()))
    for setting, vocabulary in scene_lexicon()["setting"].items():
        found = words & set(vocabulary)
        if not found:
            continue
        where = "indoor" if setting == "interior" else "outdoor"
        if subject.where not in ("unknown", where):
            return f"names {sorted(found)[0]!r} ({where}); the subject is {subject.where}"
    return ""
