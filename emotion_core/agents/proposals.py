"""What agents hand each other and the consolidator, whatever the backend.

Round 1: an ``AgentChain`` — the agent's appraisal of the subject, the abstract
concepts it chose, the concrete elements and the phrases (``Proposal``).
Round 2: a ``Critique`` — the agent's votes for other agents' phrases, each
with its reason, and the phrases it rejected, with why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .appraisal import SubjectAppraisal
from .knowledge import Element
from .semantics import Semantics


@dataclass(frozen=True)
class Proposal:
    family: str
    name: str  # the abstract concept
    phrase: str  # the drawable phrase for this subject
    agent: str = ""
    index: int = 0
    element: Element | None = None  # builtin agents: the graph element it came from
    aspect: str = ""
    element_name: str = ""  # the concrete element (an LLM agent's "element" field, or the graph element's name)

    @property
    def id(self) -> str:
        return f"{self.agent}#{self.index}"

    @property
    def identity(self) -> tuple[str, str]:
        """Two agents proposing the same phrase vote for the same thing."""
        words = re.findall(r"[a-z0-9]+", self.phrase.lower())
        return self.family, " ".join(w for w in words if w not in {"a", "an", "the"})

    def as_dict(self) -> dict:
        out = {"id": self.id, "aspect": self.aspect, "concept": self.name, "family": self.family,
               "element": self.element_name or self.name, "phrase": self.phrase}
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class AgentRequest:
    """Everything an agent needs; the same for every agent of a rewrite."""

    emotion: str
    semantics: Semantics
    subject: SubjectAppraisal
    seed: int
    creativity: float
    proposals_per_agent: int
    votes_per_agent: int = 3


@dataclass
class AgentChain:
    """Round 1 of one agent: appraisal -> concepts -> elements -> phrases."""

    agent: str
    backend: str
    appraisal: dict
    proposals: list[Proposal]
    seconds: float = 0.0  # LLM agents only: builtin agents are instant, and their transcript stays deterministic
    error: str = ""  # why the agent gave nothing usable; the pipeline then falls back
    notes: list[str] = field(default_factory=list)  # fields of an LLM answer that were dropped, and why
    answer: str = ""  # an LLM agent's validated answer, replayed as its own turn in round 2
    endpoint_failed: bool = False  # the server (not the answer) failed: round 2 is not asked of it

    def as_dict(self) -> dict:
        out = {"agent": self.agent, "backend": self.backend, "appraisal": self.appraisal,
               "concepts": list(dict.fromkeys(p.name for p in self.proposals)),
               "elements": [p.element_name or p.name for p in self.proposals],
               "phrases": [p.phrase for p in self.proposals],
               "proposals": [p.as_dict() for p in self.proposals]}
        return _with_run_details(out, self.seconds, self.error, self.notes)


def _with_run_details(out: dict, seconds: float, error: str, notes: list[str]) -> dict:
    """A round's transcript entry plus how it ran, each only when there is something to say."""
    if seconds:
        out["seconds"] = round(seconds, 3)
    if error:
        out["error"] = error
    if notes:
        out["notes"] = notes
    return out


@dataclass(frozen=True)
class Vote:
    voter: str
    target: str  # a proposal id
    reason: str
    weight: float = 1.0


@dataclass
class Critique:
    """Round 2 of one agent: votes with reasons, and the rejected phrases with why."""

    agent: str
    backend: str
    votes: list[Vote]
    rejected: list[dict] = field(default_factory=list)  # {"id", "reason"}
    scores: list[dict] = field(default_factory=list)  # an LLM agent's critiques: {"id", "fit", "concrete", "shows_emotion"}
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {"agent": self.agent, "backend": self.backend,
               "votes": [{"for": v.target, "reason": v.reason} for v in self.votes], "rejected": self.rejected}
        if self.scores:
            out["critiques"] = self.scores
        return _with_run_details(out, self.seconds, self.error, self.notes)
