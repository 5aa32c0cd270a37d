"""Build a prompt bank from an EmoSet-layout folder: per emotion, K-means over the
CLIP text features of the captions; each cluster's visual centre is the mean
image feature of its members."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..images import load_image
from .dataset import LabelledImage, scan_emotion_folder
from .feature_encoders import ClipTextEncoder, PooledImageEncoder, clip_image_encoder, dino_image_encoder, load_open_clip
from .kmeans import kmeans
from .store import PROBE_TEXTS, PromptBank

log = logging.getLogger(__name__)


def _image_features(images: list[LabelledImage], encode: PooledImageEncoder, progress) -> torch.Tensor:
    rows = []
    for image in images:
        rows.append(encode(load_image(image.path)))
        progress.update(1)
    return torch.cat(rows)


def _cluster(text: torch.Tensor, visual: torch.Tensor, clusters: int, seed: int):
    """(text centres [k, Dt] normalised, visual centres [k, Dv], counts [k]); k is at most the
    number of distinct captions, so no cluster is a duplicate of another."""
    distinct = torch.unique(text, dim=0).shape[0]
    result = kmeans(text, min(clusters, distinct), seed=seed)
    k = result.centres.shape[0]
    counts = torch.bincount(result.labels, minlength=k)
    visual_centres = torch.stack([visual[result.labels == c].mean(dim=0) for c in range(k)])
    return F.normalize(result.centres, dim=-1), visual_centres, counts


def build_bank(folder: str | Path, clip_file: str | Path, clusters: int = 8, image_encoder: str = "clip",
               dino: str | Path | None = None, seed: int = 0, show_progress: bool = True) -> PromptBank:
    """The bank for ``folder``; text features from ``clip_file``'s text tower, image features from
    its image tower (``clip``) or from the DINOv2 folder ``dino``."""
    from tqdm import tqdm

    started = time.perf_counter()
    labelled = scan_emotion_folder(folder)
    clip = load_open_clip(clip_file)
    encode_text = ClipTextEncoder(clip.model)
    encode_image = clip_image_encoder(clip) if image_encoder == "clip" else dino_image_encoder(dino)
    text_centres, visual_centres, counts = {}, {}, {}
    total = sum(len(images) for images in labelled.values())
    with tqdm(total=total, desc="bank build", unit="img", file=sys.stderr, disable=not show_progress) as progress:
        for offset, (emotion, images) in enumerate(labelled.items()):
            captions = [image.caption for image in images]
            unique = sorted(set(captions))
            features = dict(zip(unique, encode_text(unique)))
            text = torch.stack([features[c] for c in captions])
            visual = _image_features(images, encode_image, progress)
            text_centres[emotion], visual_centres[emotion], counts[emotion] = _cluster(text, visual, clusters,
                                                                                        seed + offset)
    metadata = {
        "text_encoder": {"kind": "open_clip", "file": Path(clip_file).name, "dim": encode_text.dim},
        "image_encoder": encode_image.describe(),
        "clusters": clusters,
        "classes": list(labelled),
        "source": Path(folder).resolve().name,
        "images": {emotion: len(images) for emotion, images in labelled.items()},
        "seed": seed,
    }
    bank = PromptBank(text_centres, visual_centres, counts, encode_text(list(PROBE_TEXTS)), metadata)
    log.info("bank of %d images, %s, built in %.1f s", total, ", ".join(f"{e}: {len(c)} clusters"
             for e, c in counts.items()), time.perf_counter() - started)
    return bank
