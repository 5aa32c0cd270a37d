"""The consolidator's last step: the final prompt and the negative prompt,
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


ROOM_FOR_PHRASES = 24  # tokens a cut prompt leaves for the added phrases


def fit_prompt(text: str, subject: str, token_budget: int) -> tuple[str, str]:
    """``text`` cut at clause (then word) boundaries to leave room for phrases, and a warning saying so;
    unchanged when it fits. A clear error when even the subject alone does not fit."""
    limit = content_budget(token_budget)
    used = count_tokens(text)
    if used <= limit:
        return text, ""
    target = max(limit - ROOM_FOR_PHRASES, limit // 2)
    clauses = [c.strip() for c in text.split(",") if c.strip()]
    kept = clauses[0]
    for clause in clauses[1:]:
        if count_tokens(f"{kept}, {clause}") > target:
            break
        kept = f"{kept}, {clause}"
    if count_tokens(kept) > target:  # one long first clause: cut words, never inside the subject
        words = kept.split()
        low = len(subject.split())
        while len(words) > low and count_tokens(" ".join(words)) > target:
            words.pop()
        kept = " ".join(words)
    if count_tokens(kept) > limit:
        raise InvalidInputError(
            f"prompt's subject alone is {count_tokens(kept)} CLIP tokens but the rewrite budget is {limit} "
            f"({token_budget} with start/end tokens): shorten the prompt or raise the token budget")
    return kept, (f"prompt is {used} CLIP tokens, over the budget of {limit}: kept its first {count_tokens(kept)} "
                  f"tokens ('{kept[:60]}{'…' if len(kept) > 60 else ''}'), the subject, and dropped "
                  f"{len(text) - len(kept)} characters")


def vary_mentions(phrases: list[tuple[str, str]], thing: str) -> list[tuple[str, str]]:
    """After the first phrase that names the subject, later ones say only its head noun ('the bowl of ramen',
    then 'the ramen'): the same long noun three times reads like a template."""
    head = thing.split()[-1] if thing else ""
    if not head or head == thing:
        return phrases
    seen = False
    varied = []
    for family, phrase in phrases:
        if thing in phrase:
            if seen:
                phrase = phrase.replace(thing, head)
            seen = True
        varied.append((family, phrase))
    return varied


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
        candidates = [e for e in knowledge(other).elements
                      if e.family in NEGATIVE_FAMILIES and e.slots.people != "adds" and not e.about_subject]
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
