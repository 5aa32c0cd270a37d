"""Step 4 of the chain of concept: concepts become phrases that fit the subject.

A scene concept becomes a full setting when the prompt names no place, and a
background detail when it does (the prompt's own place is kept). Expressions
and actions attach to a human subject, and become a bystander otherwise (a
lighthouse does not frown). Fit to the subject, measured with the sentence
encoder, lets the agents prefer concepts that belong with what is drawn.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from .sentence_encoder import SentenceEncoder
from .knowledge import PEOPLE_FAMILIES, Concept, all_knowledge
from .proposals import Proposal
from .semantics import Semantics


def phrase_for(concept: Concept, semantics: Semantics) -> str:
    if concept.family == "scene":
        return concept.form("detail" if semantics.scene else "setting")
    if concept.family in PEOPLE_FAMILIES:
        return concept.form("person" if semantics.is_person else "bystander")
    return concept.main_phrase


def concretise(proposal: Proposal, semantics: Semantics) -> str:
    """The visual phrase of a kept proposal."""
    if proposal.concept is not None:
        return phrase_for(proposal.concept, semantics)
    return proposal.phrase


@lru_cache(maxsize=1)
def embed_knowledge(encoder: SentenceEncoder) -> None:
    """Embed every phrase of every emotion in one batch, once, so a rewrite only embeds its subject."""
    encoder.embed([text for k in all_knowledge().values() for c in k.concepts for _, text in c.forms])


def subject_fit(concepts: Iterable[Concept], semantics: Semantics,
                encoder: SentenceEncoder | None) -> dict[str, float]:
    """Cosine between the subject (with its scene) and each concept's phrase; empty without an encoder."""
    concepts = list(concepts)
    if encoder is None or not concepts:
        return {}
    embed_knowledge(encoder)
    subject = " ".join(part for part in (semantics.subject, semantics.scene) if part)
    vectors = encoder.embed([subject] + [phrase_for(c, semantics) for c in concepts])
    cosines = (vectors[1:] @ vectors[0]).tolist()
    return {c.key: float(cos) for c, cos in zip(concepts, cosines)}
