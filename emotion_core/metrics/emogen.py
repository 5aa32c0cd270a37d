"""EmoGen's emotion accuracy (its ``training/inference.py`` ``emo_cls``; EmoEdit's
``ACC_args.emo_cls`` is the same computation on its own classifier).

The classifier is a head on CLIP image features (EmoGen: ``get_image_features`` of
CLIP ViT-L/14 -> ``Linear(768, 8)``; EmoEdit: ViT-B/32 -> 512 -> 256 -> 8), the ``clip_probe``
critic here; its probabilities are the softmax of the head's logits. Per image, with label
``y`` (the image's folder, canonical EmoSet order):

- **Emo-A (8 classes)**: ``argmax p == y``; the table's number is the mean x100.
- **emo score (8)**: ``p_y``.
- **2 classes**: ``p2 = (p_amusement + p_awe + p_contentment + p_excitement, p_anger + p_disgust
  + p_fear + p_sadness)``; accuracy ``argmax p2 == valence(y)`` and score ``p2[valence(y)]``.
- Per emotion: the means of Emo-A and emo score over that emotion's images.
"""

from __future__ import annotations

import torch

from ..taxonomy import NUM_EMOTIONS, emotion_index

POSITIVE_COUNT = 4  # the canonical order lists the four positive emotions first


def valence_probabilities(distributions: torch.Tensor) -> torch.Tensor:
    """``[B,8]`` -> ``[B,2]`` (positive, negative) sums, EmoGen's ``p_2``."""
    return distributions.reshape(-1, 2, NUM_EMOTIONS // 2).sum(dim=2)


def emogen_row(distribution: torch.Tensor, target: str) -> dict[str, float]:
    """EmoGen's per-image numbers for one ``[8]`` canonical distribution."""
    index = emotion_index(target)
    valence = 0 if index < POSITIVE_COUNT else 1
    p2 = valence_probabilities(distribution.reshape(1, -1))[0]
    return {
        "emo_a": float(int(distribution.argmax()) == index),
        "emo_score": float(distribution[index]),
        "emo_a_2class": float(int(p2.argmax()) == valence),
        "emo_score_2class": float(p2[valence]),
    }
