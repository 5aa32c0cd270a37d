"""Image files scored with a critic, one result dict per image in input order (what
``emotion-director score`` prints): the 8-way distribution and top emotion, and toward a
target the edit metrics of ``emotion_core.metrics``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ..critics.base import EmotionCritic
from ..images import load_image, resize_image
from ..ssim import ssim
from ..taxonomy import EMOTIONS, as_dict
from .emotion import emo_a, emo_s
from .emoedit import emoedit_pair, emoedit_ssim
from .esmi import esmi, prepare_source


def score_files(critic: EmotionCritic, paths: Sequence[str], batch_size: int) -> Iterator[dict]:
    """``{"image", "distribution", "top"}`` per file, streamed; same-size images in a chunk of
    ``batch_size`` share one forward pass."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = [load_image(path) for path in chunk]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[1:3]), []).append(i)
        probabilities: dict[int, torch.Tensor] = {}
        for indices in by_size.values():
            batch = torch.cat([images[i] for i in indices])
            probabilities.update(zip(indices, critic.predict(batch, batch_size=batch_size)))
        for i, path in enumerate(chunk):
            row = probabilities[i]
            yield {"image": path, "distribution": as_dict(row.tolist()), "top": EMOTIONS[int(row.argmax())]}


def with_edit_metrics(critic: EmotionCritic, results: Iterator[dict], target: str,
                      source_path: str | None = None) -> Iterator[dict]:
    """Each result with EmoEdit's Emo-A and the target's probability; with the source image an
    edit was made from, also SSIM (standard, at the source's size; EmoEditor's gate; EmoEdit's
    skimage SSIM on its 512x512 pair, ``ssim_emoedit``),
    EmoEditor's ESMI (x100; both files read as its metric script reads them) and EmoEdit's
    Emo-S. The source is read and prepared once."""
    source = reference = source_distribution = None
    if source_path is not None:
        source = load_image(source_path)
        reference = prepare_source(critic, source_path)
        source_distribution = critic.predict(source)[0]
    for result in results:
        distribution = torch.tensor([[result["distribution"][e] for e in EMOTIONS]])
        result["emo_a"] = float(emo_a(distribution, target)[0])
        result["target_probability"] = result["distribution"][target]
        if source is not None:
            image = load_image(result["image"])
            height, width = source.shape[1:3]
            same_size = image if image.shape[1:3] == source.shape[1:3] else resize_image(image, height, width,
                                                                                          mode="bilinear")
            result["ssim"] = float(ssim(source, same_size)[0])
            result["ssim_emoeditor"] = float(ssim(source, image, mode="emoeditor")[0])
            result["ssim_emoedit"] = emoedit_ssim(*emoedit_pair(result["image"], source_path))
            result["esmi"] = float(esmi(critic, reference, result["image"], target).esmi[0])
            result["emo_s"] = float(emo_s(distribution, source_distribution, target)[0])
        yield result
