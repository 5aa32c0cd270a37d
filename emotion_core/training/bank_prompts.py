"""Visual prompts for DPO pairs, retrieved from a prompt bank by the pair's caption.

MC-Diffusion's negative visual prompt is *another emotion's* visual prompt under the
same semantics, never the pair's own images: the winner's branch gets the target
emotion's bank centres for the caption, the negative visual branch the centres of the
emotion the policy picks, for the same caption.

Policies (``NEGATIVE_POLICIES`` or an emotion name):

- ``opposite-valence``: the pair's own negative emotion when it has the other valence,
  else the other-valence emotion whose clusters are closest to the caption;
- ``most-confused``: the emotion a critic most confuses the target with on the bank's
  images (``confusion``);
- an emotion name: that emotion (pairs whose target it is are skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from ..bank.retrieval import combined_features
from ..bank.store import PromptBank
from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS, parse_emotion, valence

log = logging.getLogger(__name__)

OPPOSITE_VALENCE, MOST_CONFUSED = "opposite-valence", "most-confused"
NEGATIVE_POLICIES = (OPPOSITE_VALENCE, MOST_CONFUSED)


def parse_policy(value: str) -> str:
    """A policy name, or a canonical emotion name; a clear error otherwise."""
    if value in NEGATIVE_POLICIES:
        return value
    try:
        return parse_emotion(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--negative-emotion must be one of {', '.join(NEGATIVE_POLICIES)} or an emotion "
                                f"({', '.join(EMOTIONS)}), got {value!r}") from exc


@dataclass(frozen=True)
class BankPick:
    """One branch's retrieval: the emotion, its clusters and their cosine to the caption."""

    emotion: str
    clusters: tuple[int, ...]
    similarities: tuple[float, ...]
    embeds: torch.Tensor  # adapter input: [n, D] (base) or [n, T, D] (plus)

    def provenance(self) -> dict:
        return {"emotion": self.emotion, "clusters": list(self.clusters),
                "similarity": [round(s, 4) for s in self.similarities], "source": "bank"}


class BankPromptPicker:
    """Caption -> (positive pick, negative pick) from ``bank``; captions encoded in batches
    by ``encode_text`` (the bank's own text tower, already checked against the bank)."""

    def __init__(self, bank: PromptBank, encode_text: Callable[[Sequence[str]], torch.Tensor], policy: str,
                 top_k: int = 1, combine: str = "weighted", confusion: Mapping[str, str] | None = None):
        self.bank, self.encode_text, self.policy = bank, encode_text, parse_policy(policy)
        self.top_k, self.combine = top_k, combine
        if self.policy == MOST_CONFUSED and confusion is None:
            raise InvalidInputError("--negative-emotion most-confused needs the critic's confusion (--critic FILE)")
        if self.policy in EMOTIONS and self.policy not in bank.emotions:
            raise InvalidInputError(f"--negative-emotion {self.policy}: the bank holds no {self.policy} images "
                                    f"(it holds {', '.join(bank.emotions)})")
        self.confusion = dict(confusion or {})
        self._queries: dict[str, torch.Tensor] = {}

    def encode(self, captions: Sequence[str]) -> None:
        """Encode the distinct captions not seen yet, in one batched call."""
        new = sorted({c for c in captions if c not in self._queries})
        if new:
            self._queries.update(zip(new, self.encode_text(new)))

    def _pick(self, emotion: str, caption: str) -> BankPick:
        self.encode([caption])
        retrieval = self.bank.retrieve(emotion, self._queries[caption], self.top_k)
        if len(retrieval.indices) == 1:  # a view of the bank's centre: pairs share it, memory stays the bank's
            index = retrieval.indices[0]
            embeds = self.bank.kind_centres(emotion)[index:index + 1].float()
        else:  # a mix per caption: [1, ...] per pair (a plus bank's [1, 257, 1280] is 1.3 MB)
            embeds = combined_features(retrieval, self.combine)
        return BankPick(emotion, retrieval.indices, retrieval.similarities, embeds)

    def negative_emotion(self, target: str, own_negative: str | None, caption: str) -> str:
        """The negative visual prompt's emotion for a pair (see the module docstring)."""
        available = [e for e in self.bank.emotions if e != target]
        if self.policy in EMOTIONS:
            if self.policy == target:
                raise InvalidInputError(f"--negative-emotion {self.policy} is the pair's own target emotion")
            return self.policy
        if self.policy == MOST_CONFUSED:
            choice = self.confusion.get(target)
            if choice is None or choice not in available:
                raise InvalidInputError(f"the critic's confusion names no other bank emotion for {target}")
            return choice
        other = [e for e in available if valence(e) != valence(target)]
        if not other:
            raise InvalidInputError(f"the bank holds no emotion of the other valence than {target}")
        if own_negative in other:
            return own_negative
        self.encode([caption])
        query = self._queries[caption]
        return max(other, key=lambda e: (float((self.bank.text_centres[e].float() @ query.float()).max()),
                                         -EMOTIONS.index(e)))

    def pick(self, target: str, own_negative: str | None, caption: str) -> tuple[BankPick, BankPick]:
        if target not in self.bank.emotions:
            raise InvalidInputError(f"the bank holds no {target} images (it holds {', '.join(self.bank.emotions)})")
        negative = self.negative_emotion(target, own_negative, caption)
        return self._pick(target, caption), self._pick(negative, caption)
