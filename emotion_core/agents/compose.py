"""Step 5 of the chain of concept: the final prompt and the negative prompt,
within CLIP's token budget.

The prompt starts with the user's own words (subject and scene kept), then the
concept phrases in an order a diffusion model reads well: how the subject looks
and acts, what is around it, then light, colour, weather and framing. Phrases
are admitted in priority (vote) order while they fit, so the budget drops the
least-voted concepts, never the subject.
"""

from __future__ import annotations

from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS, valence
from .knowledge import knowledge
from .sampling import gumbel, rng_for
from .semantics import Semantics
from .tokens import content_budget, count_tokens

READING_ORDER = ("facial_expression", "human_action", "object", "scene", "lighting", "colour", "weather", "composition")
NEGATIVE_FAMILIES = ("facial_expression", "colour", "lighting", "weather")  # fit any subject
NEGATIVE_PER_EMOTION = 2


def _join(parts: list[str]) -> str:
    return ", ".join(parts)


def check_core_fits(semantics: Semantics, token_budget: int) -> int:
    """Tokens of the kept prompt; a clear error when it alone overflows the budget."""
    used = count_tokens(semantics.core)
    if used > content_budget(token_budget):
        raise InvalidInputError(
            f"prompt is {used} CLIP tokens but the rewrite budget is {content_budget(token_budget)} "
            f"({token_budget} with start/end tokens): shorten the prompt or raise the token budget"
        )
    return used


def compose_prompt(semantics: Semantics, phrases: list[tuple[str, str]], token_budget: int) -> tuple[str, list[int]]:
    """The rewritten prompt and the indices of ``phrases`` (``(family, phrase)``, priority order) it used."""
    limit = content_budget(token_budget)
    used: list[int] = []
    for index in range(len(phrases)):
        trial = sorted(used + [index], key=lambda i: READING_ORDER.index(phrases[i][0]))
        if count_tokens(_join([semantics.core] + [phrases[i][1] for i in trial])) <= limit:
            used = trial
    return _join([semantics.core] + [phrases[i][1] for i in used]), used


def compose_negative(emotion: str, seed: int, token_budget: int) -> str:
    """Short concept names of the opposite-valence emotions, a few from each."""
    rng = rng_for(seed, emotion, "negative")
    picks: list[list[str]] = []
    for other in (e for e in EMOTIONS if valence(e) != valence(emotion)):
        candidates = [c for c in knowledge(other).concepts if c.family in NEGATIVE_FAMILIES]
        ranked = sorted(candidates, key=lambda c: -gumbel(rng))
        chosen: list[str] = []
        families: set[str] = set()
        for concept in ranked:
            if concept.family not in families:
                families.add(concept.family)
                chosen.append(concept.name)
            if len(chosen) == NEGATIVE_PER_EMOTION:
                break
        picks.append(chosen)
    names = [name for round_ in zip(*picks) for name in round_]  # interleave: every emotion gets room first
    limit = content_budget(token_budget)
    kept: list[str] = []
    for name in names:
        if count_tokens(_join(kept + [name])) <= limit:
            kept.append(name)
    return _join(kept)
