"""MC-Agent: the multi-agent chain-of-concept rewrite, end to end.

keep the prompt -> appraise the subject -> round 1: each persona proposes its
chain (appraisal -> concepts -> elements -> phrases) -> round 2: each agent
critiques the others' phrases and votes with reasons -> the consolidator keeps
the winners within the CLIP budget and writes the negative prompt. Builtin and
LLM agents run the same two rounds; an LLM agent that fails a round is replaced
by the builtin agent of the same persona for that round, with one warning per
agent, never an exception. Everything goes into the transcript.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from ..taxonomy import parse_emotion
from .appraisal import appraise
from .backends import BackendSettings, BackendUnavailable, make_backend
from .backends.builtin import BuiltinBackend
from .compose import compose_negative, compose_prompt, fit_prompt, vary_mentions
from .consolidate import consolidate
from .context import RewriteContext
from .personas import select_personas
from .proposals import AgentChain, AgentRequest, Critique
from .semantics import extract
from .sentence_encoder import get_encoder
from .tokens import CLIP_CONTEXT, count_tokens

log = logging.getLogger(__name__)

DEFAULT_AGENTS = 5
DEFAULT_CREATIVITY = 0.5
DEFAULT_MAX_CONCEPTS = 5
PROPOSALS_PER_AGENT = 4
MIN_TOKEN_BUDGET = 16
MAX_TOKEN_BUDGET = 3 * CLIP_CONTEXT  # ComfyUI encodes longer prompts in 77-token chunks
FALLBACK = "builtin (fallback)"


@dataclass
class RewriteResult:
    prompt: str
    emotion: str
    seed: int
    rewrite: str
    negative: str
    transcript: dict
    warnings: list[str] = field(default_factory=list)

    def as_record(self) -> dict:
        """The CLI's JSON line: ``{"prompt", "emotion", "seed", "rewrite", "negative"}``."""
        return {"prompt": self.prompt, "emotion": self.emotion, "seed": self.seed,
                "rewrite": self.rewrite, "negative": self.negative}

    @property
    def chain(self) -> list[dict]:
        """Per agent: appraisal, concepts, elements, phrases (round 1) and votes with reasons (round 2)."""
        return self.transcript["chain"]

    def transcript_json(self) -> str:
        return json.dumps(self.transcript, ensure_ascii=False, indent=1)


def _check_numbers(creativity: float, seed: int, token_budget: int, max_concepts: int) -> None:
    if not isinstance(creativity, (int, float)) or not 0.0 <= creativity <= 1.0:
        raise InvalidInputError(f"creativity must be between 0 and 1, got {creativity!r}")
    if not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(token_budget, int) or not MIN_TOKEN_BUDGET <= token_budget <= MAX_TOKEN_BUDGET:
        raise InvalidInputError(f"token budget must be between {MIN_TOKEN_BUDGET} and {MAX_TOKEN_BUDGET}, got {token_budget!r}")
    if not isinstance(max_concepts, int) or max_concepts < 1:
        raise InvalidInputError(f"max concepts must be a positive integer, got {max_concepts!r}")


def _rounds(settings: BackendSettings, personas, request: AgentRequest, context: RewriteContext,
            warnings: list[str]) -> tuple[list[AgentChain], list[Critique]]:
    """Both rounds on the chosen backend, each failed agent-round replaced by the builtin agent's."""
    offline = BuiltinBackend(context)
    backend = make_backend(settings, context)
    if isinstance(backend, BuiltinBackend):
        chains = backend.propose_all(personas, request)
        return chains, backend.critique_all(personas, request, chains)
    failures: dict[str, list[str]] = {p.key: [] for p in personas}
    try:
        chains = backend.propose_all(personas, request)
    except BackendUnavailable as exc:
        chains = [AgentChain(p.key, backend.name, {}, [], error=str(exc), endpoint_failed=True) for p in personas]
    asked = []
    for index, (persona, chain) in enumerate(zip(personas, chains)):
        if chain.error or not chain.proposals:
            fallback = offline.propose_all((persona,), request)[0]
            fallback.backend, fallback.error, fallback.seconds = FALLBACK, chain.error or "no proposals", chain.seconds
            chains[index] = fallback
            failures[persona.key].append(f"round 1: {fallback.error}")
        else:
            asked.append(persona)
    critiques = {c.agent: c for c in offline.critique_all(personas, request, chains)}
    if asked:
        try:
            answered = backend.critique_all(tuple(asked), request, chains)
        except BackendUnavailable as exc:
            answered = [Critique(p.key, backend.name, [], error=str(exc)) for p in asked]
        for critique in answered:
            if critique.error:
                critiques[critique.agent].backend = FALLBACK
                critiques[critique.agent].error = critique.error
                failures[critique.agent].append(f"round 2: {critique.error}")
            else:
                critiques[critique.agent] = critique
    for persona in personas:
        if persona.key not in {p.key for p in asked}:
            critiques[persona.key].backend = FALLBACK  # its round 1 fell back: round 2 is not asked of the LLM
        if failures[persona.key]:
            warnings.append(f"agent {persona.key} ({backend.name}): {'; '.join(failures[persona.key])}; "
                            f"used the builtin agent for {'/'.join(f.split(':')[0] for f in failures[persona.key])}")
    return chains, [critiques[p.key] for p in personas]


def _chain_record(chain: AgentChain, critique: Critique) -> dict:
    return {**chain.as_dict(), "round2": critique.as_dict()}


def rewrite(prompt: str, emotion: str, *, agents: int = DEFAULT_AGENTS, creativity: float = DEFAULT_CREATIVITY,
            seed: int = 0, backend: BackendSettings | None = None, token_budget: int = CLIP_CONTEXT,
            max_concepts: int = DEFAULT_MAX_CONCEPTS, use_encoder: bool = True) -> RewriteResult:
    """Rewrite ``prompt`` so that it shows ``emotion``; deterministic by ``seed`` with the builtin backend."""
    emotion = parse_emotion(emotion)
    _check_numbers(creativity, seed, token_budget, max_concepts)
    settings = backend or BackendSettings()
    personas = select_personas(agents)
    semantics = extract(prompt, emotion)
    warnings: list[str] = []
    kept_text, cut = fit_prompt(semantics.core, semantics.subject, token_budget)
    if cut:
        warnings.append(cut)
        semantics = extract(kept_text, emotion)

    encoder = get_encoder() if use_encoder else None
    subject = appraise(semantics, encoder)
    request = AgentRequest(emotion, semantics, subject, seed, float(creativity), PROPOSALS_PER_AGENT)
    context = RewriteContext.build(request, encoder)
    chains, critiques = _rounds(settings, personas, request, context, warnings)

    ballots = consolidate(chains, critiques, context, max_concepts)
    kept = [b for b in ballots if b.kept]
    phrases = [(b.proposal.family, b.proposal.phrase) for b in kept]
    _, used = compose_prompt(semantics, phrases, token_budget)
    shown = dict(zip(used, vary_mentions([phrases[i] for i in used], subject.thing)))  # in reading order
    text = ", ".join([semantics.core] + [shown[i][1] for i in used])
    for index, ballot in enumerate(kept):
        if index not in used:
            ballot.kept = False
    if kept and not used:
        warnings.append("the prompt leaves no room for concepts in the token budget; it is returned unchanged")
    negative = compose_negative(emotion, seed, token_budget)
    for warning in warnings:
        log.warning(warning)

    transcript = {
        "prompt": prompt,
        "emotion": emotion,
        "seed": seed,
        "creativity": creativity,
        "backend": settings.name,
        "semantics": {"subject": semantics.subject, "scene": semantics.scene, "is_person": semantics.is_person,
                      "conflicting_words": list(semantics.conflicting_words)},
        "subject": subject.as_dict(),
        "excluded": context.excluded,
        "chain": [_chain_record(c, k) for c, k in zip(chains, critiques)],
        "votes": [b.as_dict() for b in ballots],
        "concepts": [{"family": phrases[i][0], "concept": kept[i].proposal.name, "phrase": shown[i][1],
                      "from": kept[i].proposal.id} for i in used],
        "rewrite": text,
        "negative": negative,
        "clip_tokens": count_tokens(text) + 2,
        "warnings": warnings,
    }
    return RewriteResult(prompt, emotion, seed, text, negative, transcript, warnings)
