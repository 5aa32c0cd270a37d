"""EmoEdit's emotion metrics, per image (average over a set for the paper's numbers).

- Emo-A: 1 if the critic's top-1 emotion is the target, else 0 (mean = accuracy).
- Emo-S: how much the edit raised the target's probability,
  ``p_target(edit) - p_target(source)`` (EmoEdit's ``count_emo_s``). Without a
  source there is no Emo-S; ``target_probability`` is the plain ``p_target(edit)``
  (EmoEdit's classifier script calls that the "emo_score").
"""

from __future__ import annotations

import torch

from ..taxonomy import emotion_index


def target_probability(distributions: torch.Tensor, target: str) -> torch.Tensor:
    """``[B,8]`` canonical-order probabilities -> ``[B]`` probability of ``target``."""
    return distributions[:, emotion_index(target)]


def emo_a(distributions: torch.Tensor, target: str) -> torch.Tensor:
    """``[B]`` of 1.0 where the top-1 emotion is ``target``, else 0.0."""
    return (distributions.argmax(dim=1) == emotion_index(target)).float()


def emo_s(distributions: torch.Tensor, source_distribution: torch.Tensor, target: str) -> torch.Tensor:
    """``[B]`` rise of the target's probability from the source (``[8]`` or ``[1,8]``) to each edit."""
    index = emotion_index(target)
    return distributions[:, index] - source_distribution.reshape(-1)[index]
