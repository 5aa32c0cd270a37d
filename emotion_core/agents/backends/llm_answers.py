"""Reading an LLM agent's answer: strict JSON, validated field by field.

The answer must be one JSON object (optionally in a single ```json fence).
Each field is checked on its own: a concept with an unknown family, a phrase
that is too long, names the emotion, or reads as an instruction ("ignore the
previous instructions ...") is dropped with a note saying why, and the rest of
the answer is used. Text inside a field is data: it never changes what the
agent is asked or how the answer is read. Only an answer that is not the JSON
asked for, or has too few usable fields, is refused (``AgentAnswerError``):
the pipeline then falls back to the builtin agent for that agent and round.
"""

from __future__ import annotations

import json
import re

from ..fit import names_emotion
from ..knowledge import FAMILIES
from ..proposals import Proposal, Vote

MAX_PHRASE_CHARS = 100
MAX_PHRASE_WORDS = 14
MAX_REASON_CHARS = 160
MIN_CONCEPTS = 2
# Answers are asked for with max_tokens of a few hundred (a few KB); far longer ones are refused unread, so a
# hostile endpoint cannot make the rewrite spend seconds scanning megabytes.
MAX_ANSWER_CHARS = 32_000

_PLAIN = re.compile(r"^[\w][\w ,.;:'’&()/!?-]*$")
_INSTRUCTION = re.compile(
    r"ignore|disregard|instruction|system prompt|jailbreak|as an ai|language model|assistant|you are|"
    r"api key|password|reveal|https?:",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)
_FAMILY_ALIASES = {"color": "colour", "colour and brightness": "colour", "brightness": "colour",
                   "facial expression": "facial_expression", "expression": "facial_expression",
                   "human action": "human_action", "action": "human_action", "light": "lighting"}


class AgentAnswerError(ValueError):
    """An agent's answer is not the JSON asked for; the pipeline falls back for that agent and round."""

    retryable = True


def _object(content: object) -> dict:
    if not isinstance(content, str) or not content.strip():
        raise AgentAnswerError("empty answer")
    if len(content) > MAX_ANSWER_CHARS:
        raise AgentAnswerError(f"answer is {len(content)} characters, more than the {MAX_ANSWER_CHARS} accepted")
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text, strict=False)  # a raw newline inside a string is still the JSON asked for
    except json.JSONDecodeError as exc:
        raise AgentAnswerError(f"answer is not JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:  # e.g. "[[[[...": deeper than the decoder can go
        raise AgentAnswerError("answer is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise AgentAnswerError("answer is not a JSON object")
    return data


def _family(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().lower().replace("-", " ")
    key = _FAMILY_ALIASES.get(key, key.replace(" ", "_"))
    return key if key in FAMILIES else None


def plain_text(value: object, max_words: int, max_chars: int = MAX_PHRASE_CHARS) -> tuple[str | None, str]:
    """(the text, "") when ``value`` is short plain text, else (None, why not)."""
    if not isinstance(value, str):
        return None, f"is {type(value).__name__}, not text"
    text = " ".join(value.split())
    if not text:
        return None, "is empty"
    if len(text) > max_chars or len(text.split()) > max_words:
        return None, f"is longer than {max_words} words / {max_chars} characters"
    if not _PLAIN.match(text):
        return None, "has characters a prompt phrase cannot hold"
    if _INSTRUCTION.search(text):
        return None, "reads as an instruction, not a visual phrase (kept as data, not used)"
    return text, ""


def parse_chain(content: object, agent: str = "") -> tuple[str, list[Proposal], list[str], str]:
    """(appraisal, proposals, notes on dropped fields, the answer re-serialised from what was kept)."""
    data = _object(content)
    items = data.get("concepts")
    if not isinstance(items, list):
        raise AgentAnswerError('answer has no "concepts" list')
    notes: list[str] = []
    appraisal, why = plain_text(data.get("appraisal", ""), 40, 240) if data.get("appraisal") else ("", "")
    if why:
        notes.append(f"appraisal {why}")
    proposals: list[Proposal] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            notes.append(f"concept {i + 1} is not an object")
            continue
        family = _family(item.get("family"))
        name, why_name = plain_text(item.get("concept"), 6)
        phrase, why_phrase = plain_text(item.get("phrase"), MAX_PHRASE_WORDS)
        element, _ = plain_text(item.get("element", item.get("concept")), 10)
        if phrase and names_emotion(phrase):
            phrase, why_phrase = None, "names the emotion instead of showing it"
        problem = ("family is not one of " + ", ".join(FAMILIES) if not family
                   else f"concept {why_name}" if not name else f"phrase {why_phrase}" if not phrase else "")
        if problem:
            notes.append(f"concept {i + 1}: {problem}")
            continue
        proposals.append(Proposal(family, name, phrase, agent, len(proposals) + 1, element_name=element or name))
    if len(proposals) < MIN_CONCEPTS:
        detail = f" ({'; '.join(notes[:3])})" if notes else ""
        raise AgentAnswerError(f"answer has {len(proposals)} usable concepts, at least {MIN_CONCEPTS} needed{detail}")
    kept = {"appraisal": appraisal or "", "concepts": [
        {"concept": p.name, "family": p.family, "element": p.element_name, "phrase": p.phrase} for p in proposals]}
    return appraisal or "", proposals, notes, json.dumps(kept, ensure_ascii=False)


def parse_answer(content: object) -> list[Proposal]:
    """The proposals of a round-1 answer; ``AgentAnswerError`` when too few are usable."""
    return parse_chain(content)[1]


def _score(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5 else None


def parse_critique(content: object, agent: str, ids: list[str]) -> tuple[list[Vote], list[dict], list[str]]:
    """(votes with reasons, critiques, notes) of a round-2 answer; votes must name offered proposals."""
    data = _object(content)
    offered = set(ids)
    notes: list[str] = []
    critiques: list[dict] = []
    for i, item in enumerate(data.get("critiques") or []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or item["id"] not in offered:
            notes.append(f"critique {i + 1} names no offered proposal")
            continue
        scores = {k: _score(item.get(k)) for k in ("fit", "concrete", "shows_emotion")}
        if None in scores.values():
            notes.append(f"critique {i + 1}: scores must be integers 1-5")
            continue
        critiques.append({"id": item["id"], **scores})
    items = data.get("votes")
    if not isinstance(items, list):
        raise AgentAnswerError('answer has no "votes" list')
    votes: list[Vote] = []
    for i, item in enumerate(items):
        target = item.get("id") if isinstance(item, dict) else None
        if not isinstance(target, str) or target not in offered or any(v.target == target for v in votes):
            notes.append(f"vote {i + 1} names no offered proposal (or one already voted for)")
            continue
        reason, why = plain_text(item.get("reason", ""), 30, MAX_REASON_CHARS)
        if not reason:
            notes.append(f"vote {i + 1}: reason {why}")
            reason = "(no usable reason given)"
        votes.append(Vote(agent, target, reason))
    if not votes:
        detail = f" ({'; '.join(notes[:3])})" if notes else ""
        raise AgentAnswerError(f"answer has no valid vote{detail}")
    return votes, critiques, notes
