"""MC-Agent: the multi-agent chain-of-concept rewrite, end to end.

keep the semantics -> persona agents propose concepts -> vote and diversify
-> concretise for the subject -> compose within the CLIP budget (+ negative).
Every agent's proposals and every vote go into the transcript, so a user can
see why the rewrite says what it says. LLM agents that fail are replaced by
the builtin agent of the same persona, with a warning, never an exception.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from ..taxonomy import parse_emotion
from .backends import BackendSettings, BackendUnavailable, make_backend
from .backends import builtin
from .compose import check_core_fits, compose_negative, compose_prompt
from .concretise import concretise, subject_fit
from .consolidate import consolidate
from .sentence_encoder import get_encoder
from .knowledge import knowledge
from .personas import select_personas
from .proposals import AgentRequest, AgentResult
from .semantics import extract
from .tokens import CLIP_CONTEXT, count_tokens

log = logging.getLogger(__name__)

DEFAULT_AGENTS = 5
DEFAULT_CREATIVITY = 0.5
DEFAULT_MAX_CONCEPTS = 5
PROPOSALS_PER_AGENT = 6
MIN_TOKEN_BUDGET = 16
MAX_TOKEN_BUDGET = 3 * CLIP_CONTEXT  # ComfyUI encodes longer prompts in 77-token chunks


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


def _run_agents(settings: BackendSettings, personas, request: AgentRequest, warnings: list[str]) -> list[AgentResult]:
    backend = make_backend(settings)
    try:
        results = backend.propose_all(personas, request)
    except BackendUnavailable as exc:
        results = [AgentResult(p.key, backend.name, [], error=str(exc)) for p in personas]
    for index, (persona, result) in enumerate(zip(personas, results)):
        if result.error or not result.proposals:
            fallback = builtin.propose(persona, request)
            fallback.backend = f"{builtin.NAME} (fallback)"
            fallback.error = result.error or "no proposals"
            fallback.seconds += result.seconds
            results[index] = fallback
            warnings.append(f"agent {persona.key} ({backend.name}): {fallback.error}; used the builtin concepts")
    return results


def rewrite(prompt: str, emotion: str, *, agents: int = DEFAULT_AGENTS, creativity: float = DEFAULT_CREATIVITY,
            seed: int = 0, backend: BackendSettings | None = None, token_budget: int = CLIP_CONTEXT,
            max_concepts: int = DEFAULT_MAX_CONCEPTS, use_encoder: bool = True) -> RewriteResult:
    """Rewrite ``prompt`` so that it shows ``emotion``; deterministic by ``seed`` with the builtin backend."""
    emotion = parse_emotion(emotion)
    _check_numbers(creativity, seed, token_budget, max_concepts)
    settings = backend or BackendSettings()
    personas = select_personas(agents)
    semantics = extract(prompt, emotion)
    check_core_fits(semantics, token_budget)
    warnings: list[str] = []

    encoder = get_encoder() if use_encoder else None
    fit = subject_fit(knowledge(emotion).concepts, semantics, encoder)
    request = AgentRequest(emotion, semantics, seed, float(creativity), PROPOSALS_PER_AGENT, fit)
    results = _run_agents(settings, personas, request, warnings)

    ballots = consolidate(results, request, max_concepts)
    kept = [b for b in ballots if b.kept]
    phrases = [(b.proposal.family, concretise(b.proposal, semantics)) for b in kept]
    text, used = compose_prompt(semantics, phrases, token_budget)
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
                      "removed_words": list(semantics.removed_words)},
        "agents": [r.as_dict() for r in results],
        "votes": [b.as_dict() for b in ballots],
        "concepts": [{"family": phrases[i][0], "concept": kept[i].proposal.name, "phrase": phrases[i][1]} for i in used],
        "rewrite": text,
        "negative": negative,
        "clip_tokens": count_tokens(text) + 2,
        "warnings": warnings,
    }
    return RewriteResult(prompt, emotion, seed, text, negative, transcript, warnings)
