"""Step 3 of the chain of concept: vote across agents, then diversify.

Each agent's proposals count as a Borda vote (its first choice weighs most).
Concepts are then drawn one per attribute family by Gumbel sampling on the log
of their votes: with creativity 0 the most-voted concept of each family wins
every time (the cliché); with more creativity, concepts several agents liked
still win most often but not always, so repeated rewrites stay varied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .knowledge import PEOPLE_FAMILIES
from .proposals import AgentRequest, AgentResult, Proposal
from .sampling import gumbel, rng_for


@dataclass
class Ballot:
    proposal: Proposal
    votes: float = 0.0
    agents: list[str] = field(default_factory=list)
    kept: bool = False

    def as_dict(self) -> dict:
        return {**self.proposal.as_dict(), "votes": round(self.votes, 3), "agents": self.agents, "kept": self.kept}


def tally(results: list[AgentResult]) -> list[Ballot]:
    """Borda votes per distinct concept, most-voted first (ties: first proposed first)."""
    ballots: dict[tuple[str, str], Ballot] = {}
    for result in results:
        count = len(result.proposals)
        for rank, proposal in enumerate(result.proposals):
            ballot = ballots.setdefault(proposal.identity, Ballot(proposal))
            ballot.votes += (count - rank) / count
            if result.persona not in ballot.agents:
                ballot.agents.append(result.persona)
    return sorted(ballots.values(), key=lambda b: -b.votes)


def crowded(families: set[str], family: str) -> bool:
    """A second people family would add a second bystander to a subject that is not a person."""
    return family in PEOPLE_FAMILIES and bool(families & PEOPLE_FAMILIES)


def diversity_temperature(creativity: float) -> float:
    return 0.6 * creativity


def consolidate(results: list[AgentResult], request: AgentRequest, max_concepts: int) -> list[Ballot]:
    """All ballots, with ``kept`` set on at most ``max_concepts`` (one per family), kept ones first in priority order."""
    ballots = tally(results)
    rng = rng_for(request.seed, request.emotion, "consolidate", request.semantics.core)
    tau = diversity_temperature(request.creativity)
    keyed = sorted(ballots, key=lambda b: -(math.log(b.votes) + tau * gumbel(rng)))
    families: set[str] = set()
    kept: list[Ballot] = []
    for ballot in keyed:
        if len(kept) == max_concepts:
            break
        family = ballot.proposal.family
        if family in families or (crowded(families, family) and not request.semantics.is_person):
            continue
        families.add(family)
        ballot.kept = True
        kept.append(ballot)
    return kept + [b for b in ballots if not b.kept]
