"""What agents hand to the consolidation step, whatever the backend.

A proposal is either a concept of our knowledge base (the builtin agents) or a
free concept with the visual phrase an LLM agent wrote for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .knowledge import Concept
from .semantics import Semantics


@dataclass(frozen=True)
class Proposal:
    family: str
    name: str
    phrase: str = ""  # an LLM agent's phrase; knowledge-base concepts are concretised later
    concept: Concept | None = None

    @property
    def identity(self) -> tuple[str, str]:
        """Two agents proposing the same concept vote for the same thing."""
        words = re.findall(r"[a-z0-9]+", self.name.lower())
        return self.family, " ".join(w for w in words if w not in {"a", "an", "the"})

    def as_dict(self) -> dict:
        out = {"family": self.family, "concept": self.name}
        if self.phrase:
            out["phrase"] = self.phrase
        return out


@dataclass(frozen=True)
class AgentRequest:
    """Everything an agent needs to propose concepts; the same for every agent of a rewrite."""

    emotion: str
    semantics: Semantics
    seed: int
    creativity: float
    proposals_per_agent: int
    fit: dict[str, float] = field(default_factory=dict)  # concept key -> fit to the subject


@dataclass
class AgentResult:
    persona: str
    backend: str
    proposals: list[Proposal]
    seconds: float = 0.0  # LLM agents only: builtin agents are instant, and their transcript stays deterministic
    error: str = ""  # why the agent gave nothing usable; the pipeline then falls back

    def as_dict(self) -> dict:
        out = {"agent": self.persona, "backend": self.backend, "proposals": [p.as_dict() for p in self.proposals]}
        if self.seconds:
            out["seconds"] = round(self.seconds, 3)
        if self.error:
            out["error"] = self.error
        return out
