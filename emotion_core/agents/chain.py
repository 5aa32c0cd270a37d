"""Round 1 of a builtin agent: its chain of concept for this subject.

emotion -> appraisal (which aspects of *this* scene can carry the emotion, seen
through the persona's lens) -> one abstract concept per aspect -> the concrete
element of that concept that best fits the subject -> its phrase. Only
elements that fit the subject (``RewriteContext.candidates``) are considered.
Seeded noise grows with creativity; the persona's own taste (noise that
depends on persona, emotion and prompt, not on the seed) keeps agents apart.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .context import Candidate, RewriteContext
from .personas import Persona
from .proposals import AgentChain, Proposal
from .sampling import gumbel, rng_for

NAME = "builtin"
TASTE = 0.5


def temperature(creativity: float) -> float:
    return 1.5 * creativity


def appraisal_note(persona: Persona, context: RewriteContext, aspects: list[str]) -> str:
    subject = context.request.subject
    place = {"indoor": "indoors", "outdoor": "outdoors"}.get(subject.where, "place unknown")
    people = "a person" if subject.people == "person" else "no people"
    return (f"{subject.thing or subject.subject}: {place}, {subject.scale} scale, {people}; "
            f"{persona.title} lets {', '.join(aspects)} carry {context.request.emotion}")


def propose(persona: Persona, context: RewriteContext) -> AgentChain:
    """One agent's chain, its phrases in its order of preference."""
    request = context.request
    taste = rng_for(request.emotion, persona.key, request.semantics.core)
    chance = rng_for(request.seed, request.emotion, persona.key, request.semantics.core)
    tau = temperature(request.creativity)

    def noisy(value: float) -> float:
        return value + TASTE * gumbel(taste) + tau * gumbel(chance)

    by_aspect: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in context.candidates:
        by_aspect[candidate.element.aspect][candidate.element.concept].append(candidate)
    ranked_aspects = sorted(
        by_aspect, key=lambda a: -noisy(math.log(persona.aspect_weight(a))
                                        + 0.3 * max(c.quality for cs in by_aspect[a].values() for c in cs)))
    aspects = ranked_aspects[:request.proposals_per_agent]
    proposals: list[Proposal] = []
    concepts: list[dict] = []
    for aspect in aspects:
        concept = max(by_aspect[aspect], key=lambda n: noisy(max(c.quality for c in by_aspect[aspect][n])))
        chosen = max(by_aspect[aspect][concept], key=lambda c: noisy(c.quality))
        element = chosen.element
        proposals.append(Proposal(element.family, concept, chosen.phrase, persona.key, len(proposals) + 1, element,
                                  aspect, element.name))
        concepts.append({"aspect": aspect, "concept": concept, "element": element.name,
                         "fit": round(chosen.fit, 3), "emotion_margin": round(chosen.margin, 3)})
    appraisal = {"carriers": aspects, "note": appraisal_note(persona, context, aspects), "chosen": concepts}
    return AgentChain(persona.key, NAME, appraisal, proposals)
