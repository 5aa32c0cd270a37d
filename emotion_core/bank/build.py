"""Build a prompt bank from EmoSet-118K (or a folder of one sub-folder per emotion): per
emotion, K-means over the CLIP text features of the captions; each cluster's visual
centre is the mean image feature of its members (pooled ``image_embeds``, plus the mean
penultimate hidden states for an ``ip-adapter-plus`` bank).

Captions are checked first: degenerate captions (file-name words, one caption for most of
an emotion) would collapse each emotion to one cluster, so the build stops and says so.
Text features and clusters are computed once by the main process and cached; image
features are extracted in cached shards (``extract``), on every process of an
``accelerate launch`` when launched that way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .dataset import LabelledImage
from .extract import check_manifest, extract_shards, reduce_shards
from .kmeans import kmeans
from .store import IP_ADAPTER, PROBE_TEXTS, PromptBank, bank_kind

log = logging.getLogger(__name__)

# An emotion's captions are degenerate when one caption covers more than this share of them.
MAX_SAME_CAPTION_SHARE = 0.5
# Fewer images than this are decoded in the main process: worker start-up would cost more.
MIN_IMAGES_FOR_WORKERS = 256
CLUSTERS_FILE = "clusters.safetensors"


@dataclass(frozen=True)
class BuildSettings:
    clusters: int = 8
    seed: int = 0
    kind: str = IP_ADAPTER.name
    image_encoder: str = "clip"  # clip | dino | clip-vision
    dino: str | None = None
    clip_vision: str | None = None
    siglip: str | None = None  # a transformers SiglipVisionModel folder (flux-redux banks)
    split: str | None = "train"
    strict: bool = False
    allow_degenerate_captions: bool = False
    batch_size: int = 32
    workers: int = 0
    shard_size: int = 4096
    cache_dir: str | None = None
    keep_cache: bool = False
    show_progress: bool = True


def check_captions(images: Mapping[str, Sequence[LabelledImage]], clusters: int) -> None:
    """Stop before a silent collapse: an emotion whose captions are mostly one text, or has
    fewer distinct captions than clusters, cannot make distinct clusters."""
    problems = []
    for emotion, items in images.items():
        counts = Counter(i.caption for i in items)
        text, most = counts.most_common(1)[0]
        sources = Counter(i.caption_source for i in items)
        if clusters > 1 and len(items) > 1 and most / len(items) > MAX_SAME_CAPTION_SHARE:
            problems.append(f"{emotion}: {most} of {len(items)} captions are {text!r}")
        elif len(counts) < clusters:
            problems.append(f"{emotion}: {len(counts)} distinct captions for {clusters} clusters")
        if problems and problems[-1].startswith(emotion) and sources.get("file name"):
            problems[-1] += f" ({sources['file name']} from file names)"
    if problems:
        raise InvalidInputError(
            "degenerate captions, K-means would collapse to fewer clusters than asked: " + "; ".join(problems[:8])
            + ". Supply captions: EmoSet-118K's annotation/ JSONs (captions from their attributes), a <image>.txt "
            "beside each image, or a captions.jsonl per emotion folder ({\"file\": NAME, \"caption\": TEXT}); or "
            "lower --clusters; --allow-degenerate-captions builds anyway")


def _image_encoder(settings: BuildSettings, clip):
    from .feature_encoders import clip_image_encoder, clip_vision_encoder, dino_image_encoder

    if settings.image_encoder == "clip-vision":
        return clip_vision_encoder(settings.clip_vision)
    if settings.image_encoder == "dino":
        return dino_image_encoder(settings.dino)
    if settings.image_encoder == "siglip":
        from .siglip_encoder import siglip_encoder

        return siglip_encoder(settings.siglip)
    return clip_image_encoder(clip)


def _fingerprint(paths: Sequence[Path], captions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for path, caption in zip(paths, captions):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{caption}\n".encode())
    return digest.hexdigest()


def _file_id(path: str | None) -> list | None:
    if not path:
        return None
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def _cluster_captions(images: Mapping[str, Sequence[LabelledImage]], encode_text, settings: BuildSettings):
    """Per emotion: (normalised text centres [k, Dt], image labels within the emotion)."""
    result = {}
    for offset, (emotion, items) in enumerate(images.items()):
        captions = [i.caption for i in items]
        unique = sorted(set(captions))
        features = dict(zip(unique, encode_text(unique)))
        text = torch.stack([features[c] for c in captions])
        clustered = kmeans(text, settings.clusters, seed=settings.seed + offset)
        result[emotion] = (F.normalize(clustered.centres, dim=-1), clustered.labels)
    return result


def _save_clusters(path: Path, clusters) -> None:
    from ..weights import save_safetensors

    tensors = {}
    for emotion, (centres, labels) in clusters.items():
        tensors[f"text_centres.{emotion}"], tensors[f"labels.{emotion}"] = centres, labels
    save_safetensors(tensors, path)


def _load_clusters(path: Path, emotions: Sequence[str]):
    from ..weights import load_state_dict

    state = load_state_dict(path)
    return {e: (state[f"text_centres.{e}"], state[f"labels.{e}"]) for e in emotions}


def _accelerator():
    """accelerate's state when it is installed (``accelerate launch`` sets several processes)."""
    try:
        from accelerate import Accelerator
    except ImportError:
        return None
    return Accelerator()


def build_bank(folder: str | Path, clip_file: str | Path, settings: BuildSettings = BuildSettings(),
               out: str | Path | None = None, stop_after_shards: int | None = None) -> PromptBank | None:
    """The bank for ``folder``; text features from ``clip_file``'s text tower. Returns None on
    processes other than the main one of a multi-process launch (only the main one builds it).
    ``stop_after_shards`` (tests) ends extraction early as an interrupt would."""
    from ..datasets.emoset import read_labelled_images
    from .feature_encoders import ClipTextEncoder, load_open_clip

    started = time.perf_counter()
    clip = load_open_clip(clip_file)  # a wrong file fails before any work
    kind = bank_kind(settings.kind)
    if (kind.name == "flux-redux") != (settings.image_encoder == "siglip"):
        raise InvalidInputError("a flux-redux bank stores SigLIP sequences: pass --siglip DIR (and only for it)")
    if kind.rank > 1 and settings.image_encoder not in ("clip-vision", "siglip"):
        raise InvalidInputError(f"a {kind.name} bank stores CLIP vision hidden states: pass --clip-vision DIR")
    read = read_labelled_images(folder, settings.split, settings.strict)
    images = read.images
    if settings.allow_degenerate_captions:
        try:
            check_captions(images, settings.clusters)
        except InvalidInputError as exc:
            log.warning("building anyway (--allow-degenerate-captions): %s", str(exc).split(". Supply")[0])
    else:
        check_captions(images, settings.clusters)
    flat = [item for items in images.values() for item in items]
    paths = [i.path for i in flat]
    accelerator = _accelerator()
    main = accelerator is None or accelerator.is_main_process
    processes = 1 if accelerator is None else accelerator.num_processes
    cache = Path(settings.cache_dir) if settings.cache_dir else Path(f"{out or Path(folder) / 'bank'}.cache")
    manifest = {"images": _fingerprint(paths, [i.caption for i in flat]), "clip": _file_id(str(clip_file)),
                "image_encoder": [settings.image_encoder,
                                  _file_id(settings.dino or settings.clip_vision or settings.siglip)],
                "kind": kind.name, "clusters": settings.clusters, "seed": settings.seed,
                "shard_size": settings.shard_size, "batch_size": settings.batch_size}
    if main:
        check_manifest(cache, manifest)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    encode_text = ClipTextEncoder(clip.model)
    clusters_path = cache / CLUSTERS_FILE
    if main and not clusters_path.is_file():
        _save_clusters(clusters_path, _cluster_captions(images, encode_text, settings))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    clustered = _load_clusters(clusters_path, list(images))
    offsets, labels = {}, []
    for emotion in images:
        offsets[emotion] = sum(int(clustered[e][0].shape[0]) for e in offsets)
        labels.extend(int(label) + offsets[emotion] for label in clustered[emotion][1])
    total_clusters = sum(int(c.shape[0]) for c, _ in clustered.values())
    encoder = _image_encoder(settings, clip)
    index = 0 if accelerator is None else accelerator.process_index
    workers = settings.workers if len(paths) >= MIN_IMAGES_FOR_WORKERS else 0
    extract_shards(paths, labels, encoder, cache, settings.shard_size, settings.batch_size, workers,
                   index, processes, settings.show_progress, stop_after_shards)
    if stop_after_shards is not None:
        return None
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if not main:
        return None
    shards = (len(paths) + settings.shard_size - 1) // settings.shard_size
    sums, counts, failed = reduce_shards(cache, shards, total_clusters)
    for position, why in failed:
        log.warning("skipped unreadable image %s (%s)", paths[position], why)
    bank = _assemble(images, clustered, offsets, sums, counts, encode_text, encoder, kind, settings, folder,
                     clip_file, read, failed, paths)
    log.info("bank of %d images (%d unreadable), %s, built in %.1f s", len(paths), len(failed),
             ", ".join(f"{e}: {len(c)} clusters" for e, c in bank.counts.items()), time.perf_counter() - started)
    return bank


def _assemble(images, clustered, offsets, sums, counts, encode_text, encoder, kind, settings, folder, clip_file,
              read, failed, paths) -> PromptBank:
    text_centres, visual_centres, member_counts, extra = {}, {}, {}, {}
    for emotion in images:
        centres = clustered[emotion][0]
        rows = torch.arange(centres.shape[0]) + offsets[emotion]
        keep = counts[rows] > 0  # a cluster whose images were all unreadable has no visual centre
        if not bool(keep.any()):
            log.warning("%s: no readable images, left out of the bank", emotion)
            continue
        rows = rows[keep]
        text_centres[emotion], member_counts[emotion] = centres[keep], counts[rows]
        divisor = counts[rows].double()
        visual_centres[emotion] = (sums["image_embeds"][rows] / divisor[:, None]).float()
        if kind.group != "visual_centres":
            feature = sums[kind.feature][rows]
            extra.setdefault(kind.group, {})[emotion] = (feature / divisor.view(-1, *[1] * (feature.ndim - 1))).float()
    if not text_centres:
        raise InvalidInputError(f"{folder}: no readable images")
    neutral = {}
    if kind.group != "visual_centres":  # the encoder's "no image" features, what image prompts use for plus
        from ..visual_prompt.prompt import neutral_image

        pixels = neutral_image(encoder.image_size).permute(0, 3, 1, 2)
        neutral[kind.group] = encoder.features(pixels)[kind.feature].float().cpu()
    failed_names = [str(paths[i]) for i, _ in failed]
    metadata = {
        "built_for": kind.name,
        "text_encoder": {"kind": "open_clip", "file": Path(clip_file).name, "dim": encode_text.dim},
        "image_encoder": encoder.describe(),
        "clusters": settings.clusters,
        "classes": list(text_centres),
        "source": Path(folder).resolve().name,
        "source_path": str(Path(folder).resolve()),
        "split": read.split,
        "images": {emotion: int(member_counts[emotion].sum()) for emotion in text_centres},
        "missing_annotations": len(read.missing_annotations),
        "unreadable_images": failed_names[:100],
        "seed": settings.seed,
    }
    return PromptBank(text_centres, visual_centres, member_counts, encode_text(list(PROBE_TEXTS)), metadata, extra,
                      neutral)


def remove_cache(cache: Path) -> None:
    """The feature cache of a finished build (shard files, clusters, manifest)."""
    if not cache.is_dir():
        return
    for path in cache.iterdir():
        if path.is_file():
            os.unlink(path)
    cache.rmdir()


