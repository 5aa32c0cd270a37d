"""The builtin agents: offline, deterministic by seed, drawing on our knowledge base.

Each persona scores every concept of the target emotion by its lean toward the
concept's family, the concept's fit to the subject, its own fixed taste (noise
that depends on the persona, emotion and prompt, not the seed) and seeded
noise whose scale grows with creativity, then proposes its best few (at most
two per family, so one agent does not spend all its proposals on one family).
With creativity 0 the seed therefore changes nothing.
"""

from __future__ import annotations

import math
from collections import Counter

from ..knowledge import knowledge
from ..personas import Persona
from ..proposals import AgentRequest, AgentResult, Proposal
from ..sampling import gumbel, rng_for

NAME = "builtin"
FIT_GAIN = 6.0  # a cosine gap of 0.1 to the subject weighs like a 1.8x family lean
TASTE = 0.5
MAX_PER_FAMILY = 2


def temperature(creativity: float) -> float:
    return 1.5 * creativity


def propose(persona: Persona, request: AgentRequest) -> AgentResult:
    """One agent's proposals, in its order of preference."""
    taste = rng_for(request.emotion, persona.key, request.semantics.core)
    chance = rng_for(request.seed, request.emotion, persona.key, request.semantics.core)
    tau = temperature(request.creativity)
    scored = sorted(
        ((math.log(persona.weight(c.family)) + FIT_GAIN * request.fit.get(c.key, 0.0)
          + TASTE * gumbel(taste) + tau * gumbel(chance), c)
         for c in knowledge(request.emotion).concepts),
        key=lambda sc: -sc[0],
    )
    per_family: Counter[str] = Counter()
    proposals: list[Proposal] = []
    for _, concept in scored:
        if per_family[concept.family] >= MAX_PER_FAMILY:
            continue
        per_family[concept.family] += 1
        proposals.append(Proposal(concept.family, concept.name, concept=concept))
        if len(proposals) == request.proposals_per_agent:
            break
    return AgentResult(persona.key, NAME, proposals)


class BuiltinBackend:
    name = NAME

    def propose_all(self, personas: tuple[Persona, ...], request: AgentRequest) -> list[AgentResult]:
        return [propose(p, request) for p in personas]
