"""Round 2 of a builtin agent: it reads the other agents' phrases, critiques
each on the three questions MC-Agent's panel asks — does it fit the subject,
can it be drawn, does it show the emotion without naming it — and votes for
the best few, each vote with its reason. Phrases that contradict the subject's
setting or name the emotion are rejected, with why.
"""

from __future__ import annotations

import math

from .chain import TASTE, temperature
from .context import EMOTION_GAIN, FIT_GAIN, SUBJECT_BONUS, RewriteContext, phrase_clash
from .fit import clash, concreteness, names_emotion
from .personas import Persona
from .proposals import AgentChain, Critique, Proposal, Vote
from .sampling import gumbel, rng_for

NAME = "builtin"
LENS_GAIN = 0.5  # how much the persona's own lean weighs in its judgement of others


def judge(proposal: Proposal, context: RewriteContext) -> tuple[str, float, float, float]:
    """(rejection reason or "", fit, emotion margin, concreteness) of one phrase."""
    if names_emotion(proposal.phrase):
        return "names the emotion instead of showing it", 0.0, 0.0, 0.0
    reason = (clash(proposal.element, context.request.subject) if proposal.element is not None
              else phrase_clash(proposal.phrase, context))
    if reason:
        return f"contradicts the subject: {reason}", 0.0, 0.0, 0.0
    fit, margin = context.scores(proposal.phrase, proposal.element)
    return "", fit, margin, concreteness(proposal.family, proposal.phrase)


def reason_text(proposal: Proposal, context: RewriteContext, fit: float, margin: float, concrete: float) -> str:
    subject = context.request.subject
    where = "/".join(v for v in (subject.where, subject.scale) if v != "unknown")
    drawable = "drawable" if concrete >= 0.8 else "less concrete"
    if context.encoder is None:
        return (f"fits {subject.thing or subject.subject} ({where or 'any place'}) by its slots; {drawable} "
                f"({proposal.family}); does not name {context.request.emotion} (no MiniLM: fit not scored)")
    shows = (f"shows {context.request.emotion} without naming it ({margin:+.2f})" if margin > 0
             else f"reads as another emotion more than {context.request.emotion} ({margin:+.2f})")
    return f"fits {subject.thing or subject.subject} ({where or 'any place'}) {fit:.2f}; {drawable} ({proposal.family}); {shows}"


def critique(persona: Persona, context: RewriteContext, chains: list[AgentChain]) -> Critique:
    request = context.request
    taste = rng_for(request.emotion, persona.key, request.semantics.core, "critique")
    chance = rng_for(request.seed, request.emotion, persona.key, request.semantics.core, "critique")
    tau = temperature(request.creativity)
    scored: list[tuple[float, Proposal, str]] = []
    rejected: list[dict] = []
    for chain in chains:
        if chain.agent == persona.key:
            continue
        for proposal in chain.proposals:
            reason, fit, margin, concrete = judge(proposal, context)
            if reason:
                rejected.append({"id": proposal.id, "reason": reason})
                continue
            names_subject = bool(request.subject.thing) and request.subject.thing in proposal.phrase
            score = (LENS_GAIN * math.log(persona.weight(proposal.family)) + FIT_GAIN * fit + EMOTION_GAIN * margin
                     + concrete + SUBJECT_BONUS * names_subject + TASTE * gumbel(taste) + tau * gumbel(chance))
            scored.append((score, proposal, reason_text(proposal, context, fit, margin, concrete)))
    scored.sort(key=lambda item: -item[0])
    votes = [Vote(persona.key, proposal.id, reason) for _, proposal, reason in scored[:request.votes_per_agent]]
    return Critique(persona.key, NAME, votes, rejected)
