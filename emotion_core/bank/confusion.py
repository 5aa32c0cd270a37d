"""Which emotion a critic most confuses each emotion with, measured on a bank's own images:
the ``most-confused`` negative visual prompt policy of DPO data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from ..taxonomy import EMOTIONS

log = logging.getLogger(__name__)

CRITIC_SIZE = 224
BATCH = 16


@torch.no_grad()
def confusion_matrix(critic, folder: str | Path, emotions: Sequence[str], per_emotion: int,
                     split: str | None = None) -> dict[str, torch.Tensor]:
    """Emotion -> the critic's mean distribution ``[8]`` over the first ``per_emotion`` images of it."""
    from ..datasets.emoset import read_labelled_images
    from ..training.data import as_image, load_square

    images = read_labelled_images(folder, split).images
    rows = {}
    for emotion in emotions:
        paths = [i.path for i in images.get(emotion, [])[:per_emotion]]
        if not paths:
            continue
        total = torch.zeros(len(EMOTIONS))
        for start in range(0, len(paths), BATCH):
            batch = torch.cat([load_square(p, CRITIC_SIZE) for p in paths[start:start + BATCH]])
            total += critic(as_image(batch)).float().sum(dim=0).cpu()
        rows[emotion] = total / len(paths)
    return rows


def most_confused(critic, folder: str | Path, emotions: Sequence[str], per_emotion: int,
                  split: str | None = None) -> dict[str, str]:
    """Emotion -> the other bank emotion the critic gives most probability to on its images."""
    rows = confusion_matrix(critic, folder, emotions, per_emotion, split)
    choice = {}
    for emotion, row in rows.items():
        others = [e for e in emotions if e != emotion]
        choice[emotion] = max(others, key=lambda e: (float(row[EMOTIONS.index(e)]), -EMOTIONS.index(e)))
    log.info("most confused by the critic: %s", choice)
    return choice
