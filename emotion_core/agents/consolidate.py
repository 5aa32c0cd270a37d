"""The consolidator: round 2's votes decide which phrases make the prompt.

Every proposed phrase starts with ``OWN_WEIGHT`` (its proposer's vote) and
gains one per round-2 vote; the same phrase from two agents is one ballot.
Winners are drawn one per attribute family by Gumbel sampling on the log of
their votes: creativity 0 takes the most-voted every time, more creativity
lets less-voted phrases through, so repeated rewrites stay varied. A phrase
that contradicts the subject or names the emotion is never kept, whoever
voted for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .context import RewriteContext
from .critique import judge
from .knowledge import PEOPLE_FAMILIES
from .proposals import AgentChain, Critique, Proposal
from .sampling import gumbel, rng_for

OWN_WEIGHT = 0.5
MAX_SUBJECT_MENTIONS = 3  # phrases that repeat the subject's noun: more reads like a template


@dataclass
class Ballot:
    proposal: Proposal
    votes: float = 0.0
    agents: list[str] = field(default_factory=list)  # proposers
    voters: list[str] = field(default_factory=list)
    kept: bool = False
    excluded: str = ""

    def as_dict(self) -> dict:
        out = {"id": self.proposal.id, "family": self.proposal.family, "concept": self.proposal.name,
               "phrase": self.proposal.phrase, "votes": round(self.votes, 3), "agents": self.agents,
               "voters": self.voters, "kept": self.kept}
        if self.excluded:
            out["excluded"] = self.excluded
        return out


def tally(chains: list[AgentChain], critiques: list[Critique]) -> list[Ballot]:
    """Votes per distinct phrase, most-voted first (ties: first proposed first)."""
    ballots: dict[tuple[str, str], Ballot] = {}
    by_id: dict[str, Ballot] = {}
    for chain in chains:
        for proposal in chain.proposals:
            ballot = ballots.setdefault(proposal.identity, Ballot(proposal))
            ballot.votes += OWN_WEIGHT
            ballot.agents.append(chain.agent)
            by_id[proposal.id] = ballot
    for critique in critiques:
        for vote in critique.votes:
            ballot = by_id.get(vote.target)
            if ballot is not None and critique.agent not in ballot.agents:
                ballot.votes += vote.weight
                ballot.voters.append(critique.agent)
    return sorted(ballots.values(), key=lambda b: -b.votes)


def crowded(families: set[str], family: str) -> bool:
    """A second people family would add a second figure to a subject that is not a person."""
    return family in PEOPLE_FAMILIES and bool(families & PEOPLE_FAMILIES)


def diversity_temperature(creativity: float) -> float:
    return 0.6 * creativity


def consolidate(chains: list[AgentChain], critiques: list[Critique], context: RewriteContext,
                max_concepts: int) -> list[Ballot]:
    """All ballots, ``kept`` set on at most ``max_concepts`` (one per family), kept ones first in priority order."""
    request = context.request
    ballots = tally(chains, critiques)
    for ballot in ballots:
        ballot.excluded = judge(ballot.proposal, context)[0]
    rng = rng_for(request.seed, request.emotion, "consolidate", request.semantics.core)
    tau = diversity_temperature(request.creativity)
    keyed = sorted(ballots, key=lambda b: -(math.log(b.votes) + tau * gumbel(rng)))
    families: set[str] = set()
    kept: list[Ballot] = []
    mentions = 0
    thing = request.subject.thing
    for ballot in keyed:
        if len(kept) == max_concepts:
            break
        family = ballot.proposal.family
        if ballot.excluded or family in families or (crowded(families, family) and not request.semantics.is_person):
            continue
        names_subject = bool(thing) and thing in ballot.proposal.phrase
        if names_subject and mentions == MAX_SUBJECT_MENTIONS:
            continue
        mentions += names_subject
        families.add(family)
        ballot.kept = True
        kept.append(ballot)
    return kept + [b for b in ballots if not b.kept]
