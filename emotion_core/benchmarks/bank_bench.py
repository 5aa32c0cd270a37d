"""``bench bank``: what building an MC-Diffusion prompt bank from EmoSet-118K costs here.

- Feature extraction: ``bank build``'s own path (``bank.extract``: JPEG decoding and
  cropping in a DataLoader, batched encoder, per-cluster sums written to shard files) over
  ``--images`` 512x384 JPEGs, with the full-size image encoder the public SD1.5 adapters read
  (random weights; speed does not depend on the values): open_clip ViT-H/14's image tower
  (``ip-adapter`` banks) or a transformers CLIPVisionModelWithProjection of ViT-H/14's shape
  giving hidden states too (``--kind ip-adapter-plus``). ``--encoder vit-b-32`` measures a
  small tower instead. One warm-up batch is not timed.
- Clustering: ``bank.kmeans`` (scikit-learn KMeans, k-means++, 3 restarts) of 10k and 100k
  (``--cluster-sizes``) L2-normalised 1024-d features (ViT-H/14 text width) into ``--clusters`` clusters.
- Rates per wall-clock second and per CPU second of the process (they differ when the machine
  is shared; workers' decoding is not in the CPU figure when ``--workers`` > 0).
- Extrapolation for EmoSet-118K's 118,102 images: extraction at the measured wall rate, plus
  clustering as the build runs it (one K-means per emotion of ~118,102/8 captions, timed at
  that size by interpolating the 10k and 100k figures linearly).

Torch is pinned to ``--threads`` (default 1) while timing.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from .timing import pinned_threads

log = logging.getLogger(__name__)

EMOSET_LABELLED = 118_102  # EmoSet README: "118,102 of these images are carefully labeled"
TEXT_WIDTH = 1024  # ViT-H/14 text features
ENCODERS = ("vit-h-14", "vit-b-32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=8, help="images timed for extraction (default 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per encoder batch (default 4)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers (default 0: decoding in the timed process, one thread)")
    parser.add_argument("--encoder", choices=ENCODERS, default="vit-h-14",
                        help="image tower size (default vit-h-14, what the public SD1.5 adapters read)")
    parser.add_argument("--kind", choices=("ip-adapter", "ip-adapter-plus"), default="ip-adapter",
                        help="bank kind: pooled features, or pooled + hidden states (plus)")
    parser.add_argument("--clusters", type=int, default=8, help="K-means clusters (default 8)")
    parser.add_argument("--cluster-sizes", default="10000,100000", metavar="N,M",
                        help="two feature counts K-means is timed at (default 10000,100000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, images and features (default 0)")


def _open_clip_tower(name: str):
    import open_clip
    from open_clip.model import _build_vision_tower

    from ..bank.feature_encoders import PooledImageEncoder
    from ..critics.clip_backbone import ClipPreprocess

    config = open_clip.get_model_config(name)
    tower = _build_vision_tower(config["embed_dim"], config["vision_cfg"])
    size = config["vision_cfg"]["image_size"]
    return PooledImageEncoder("clip", f"{name} (random weights)", tower, ClipPreprocess(size), config["embed_dim"],
                              "image_embeds")


def _clip_vision(size: str):
    """A CLIPVisionModelWithProjection of ViT-H/14's shape (IP-Adapter's image_encoder) or of
    ViT-B/32's, in ``bank build``'s own encoder class."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ..bank.feature_encoders import ClipVisionFeatureEncoder
    from ..critics.clip_backbone import ClipPreprocess
    from ..pipeline.visual import ClipVisionEncoder

    if size == "vit-h-14":
        config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                  num_attention_heads=16, image_size=224, patch_size=14, projection_dim=1024)
    else:
        config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                  num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512)
    model = CLIPVisionModelWithProjection(config)
    return ClipVisionFeatureEncoder(ClipVisionEncoder(model, ClipPreprocess(224), size), f"{size} (random weights)")


def _encoder(args: argparse.Namespace):
    if args.kind == "ip-adapter-plus":
        return _clip_vision(args.encoder)
    return _open_clip_tower("ViT-H-14" if args.encoder == "vit-h-14" else "ViT-B-32")


def _write_jpegs(folder: Path, count: int, seed: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"image_{index:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _extraction(args: argparse.Namespace, folder: Path) -> dict:
    from ..bank.extract import extract_shards

    encoder = _encoder(args)
    paths = _write_jpegs(folder, args.images + args.batch_size, args.seed)
    labels = [index % args.clusters for index in range(len(paths))]
    warmup, timed = paths[:args.batch_size], paths[args.batch_size:]
    extract_shards(warmup, labels, encoder, folder / "warmup_cache", len(warmup), args.batch_size, 0,
                   show_progress=False)
    wall, cpu = time.perf_counter(), time.process_time()
    extract_shards(timed, labels, encoder, folder / "cache", args.batch_size * 4, args.batch_size, args.workers,
                   show_progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"encoder": encoder.describe(), "images": len(timed), "seconds": round(wall, 3),
            "images_per_second": round(len(timed) / wall, 4),
            "images_per_cpu_second": round(len(timed) / max(cpu, 1e-9), 4)}


def _clustering(sizes: tuple[int, int], clusters: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    import torch
    import torch.nn.functional as F

    from ..bank.kmeans import kmeans

    generator = torch.Generator().manual_seed(seed)
    seconds, cpu_seconds = {}, {}
    for size in sizes:
        # captions cluster: draw features around a few hundred topics, as caption features do
        topics = F.normalize(torch.randn(256, TEXT_WIDTH, generator=generator), dim=-1)
        points = topics[torch.randint(256, (size,), generator=generator)]
        points = F.normalize(points + 0.3 * torch.randn(size, TEXT_WIDTH, generator=generator) / TEXT_WIDTH ** 0.5,
                             dim=-1)
        start, cpu = time.perf_counter(), time.process_time()
        kmeans(points, clusters, seed=seed)
        seconds[f"{size}"] = round(time.perf_counter() - start, 3)
        cpu_seconds[f"{size}"] = round(time.process_time() - cpu, 3)
    return seconds, cpu_seconds


def run(args: argparse.Namespace) -> dict:
    from ..errors import InvalidInputError

    if args.images < 1 or args.batch_size < 1 or args.threads < 1 or args.clusters < 1 or args.workers < 0:
        raise InvalidInputError("--images, --batch-size, --threads and --clusters must be >= 1, --workers >= 0")
    try:
        sizes = tuple(int(n) for n in args.cluster_sizes.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 2 or not args.clusters <= sizes[0] < sizes[1]:
        raise InvalidInputError(f"--cluster-sizes must be two increasing counts of at least --clusters, got "
                                f"{args.cluster_sizes!r}")
    with pinned_threads(args.threads), tempfile.TemporaryDirectory(prefix="bench_bank_") as tmp:
        extraction = _extraction(args, Path(tmp))
        clustering, clustering_cpu = _clustering(sizes, args.clusters, args.seed)
    per_emotion = EMOSET_LABELLED / 8
    small, large = (clustering[str(s)] for s in sizes)
    slope = (large - small) / (sizes[1] - sizes[0])
    cluster_seconds = 8 * max(small + slope * (per_emotion - sizes[0]), 0.0)
    extract_seconds = EMOSET_LABELLED / extraction["images_per_second"]
    return {"threads": args.threads, "kind": args.kind, "extraction": extraction,
            "clustering_seconds": clustering, "clustering_cpu_seconds": clustering_cpu, "clusters": args.clusters,
            "emoset_118k_images": EMOSET_LABELLED,
            "emoset_118k_extraction_hours": round(extract_seconds / 3600, 2),
            "emoset_118k_extraction_cpu_hours": round(EMOSET_LABELLED / extraction["images_per_cpu_second"] / 3600, 2),
            "emoset_118k_clustering_seconds": round(cluster_seconds, 1),
            "emoset_118k_total_hours": round((extract_seconds + cluster_seconds) / 3600, 2)}
