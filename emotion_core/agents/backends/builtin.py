"""The builtin agents: offline, deterministic by seed, drawing on the concept graph.

Round 1 is ``chain.propose`` (appraisal -> concepts -> elements -> phrases for
this subject), round 2 ``critique.critique`` (critiques and votes with
reasons). With creativity 0 the seed changes nothing.
"""

from __future__ import annotations

from ..chain import NAME, propose
from ..context import RewriteContext
from ..critique import critique
from ..personas import Persona
from ..proposals import AgentChain, Critique

__all__ = ["NAME", "BuiltinBackend", "propose", "critique"]


class BuiltinBackend:
    name = NAME

    def __init__(self, context: RewriteContext):
        self.context = context

    def propose_all(self, personas: tuple[Persona, ...], request) -> list[AgentChain]:
        return [propose(p, self.context) for p in personas]

    def critique_all(self, personas: tuple[Persona, ...], request, chains: list[AgentChain]) -> list[Critique]:
        return [critique(p, self.context, chains) for p in personas]
