"""Image features of a bank's clusters at dataset scale, summed per cluster.

Images stream through a ``torch.utils.data.DataLoader`` (decoding and cropping in its
workers), the encoder runs on batches, and only per-cluster sums are kept, so memory is
bounded by the cluster count, never by the image count.

The work is cut into fixed shards of consecutive images; each shard's per-cluster sums
are written atomically to the feature cache (``shard_<n>.safetensors``) as soon as the
shard is done. A build that is interrupted resumes at the first missing shard, and
shards are reduced in shard order in float64, so a resumed build, a single-process build
and an ``accelerate launch`` build over several processes (shard ``i`` on process
``i mod N``) give byte-identical centres.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import InvalidInputError
from ..images import load_image, resize_shorter_center_crop, to_nchw
from ..weights import load_state_dict, save_safetensors

log = logging.getLogger(__name__)

SHARD_PREFIX = "shard_"


class CroppedImages(torch.utils.data.Dataset):
    """Image ``i`` as ``[3, S, S]`` in 0..1 (shorter side resized, centre crop), or None when
    the file cannot be decoded (corrupt or truncated: skipped and listed, never fatal)."""

    def __init__(self, paths: Sequence[Path], size: int):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            pixels = to_nchw(load_image(self.paths[index]))
        except (InvalidInputError, OSError, ValueError, SyntaxError) as exc:
            return index, None, f"{type(exc).__name__}: {exc}"
        return index, resize_shorter_center_crop(pixels, self.size, mode="bicubic").clamp(0, 1)[0], None


def collate(rows):
    good = [(i, p) for i, p, _ in rows if p is not None]
    failed = [(i, why) for i, p, why in rows if p is None]
    indices = [i for i, _ in good]
    pixels = torch.stack([p for _, p in good]) if good else None
    return indices, pixels, failed


@dataclass
class ShardSums:
    """Per-cluster feature sums of one shard (clusters it touched only)."""

    clusters: list[int]
    counts: list[int]
    sums: dict[str, torch.Tensor]  # feature -> [len(clusters), ...] float64
    failed: list[tuple[int, str]]


class ShardAccumulator:
    """Per-cluster float64 sums of one shard, added image by image in index order (identical
    sums however batches were cut); memory is clusters x feature size, never images x it."""

    def __init__(self):
        self.sums: dict[str, dict[int, torch.Tensor]] = {}
        self.counts: dict[int, int] = {}
        self.failed: list[tuple[int, str]] = []

    def add(self, features: dict[str, torch.Tensor], labels: Sequence[int]) -> None:
        for name, rows in features.items():
            totals = self.sums.setdefault(name, {})
            for row, label in zip(rows.double(), labels):
                if label in totals:
                    totals[label] += row
                else:
                    totals[label] = row.clone()
        for label in labels:
            self.counts[label] = self.counts.get(label, 0) + 1

    def result(self) -> ShardSums:
        clusters = sorted(self.counts)
        sums = {name: torch.stack([totals[c] for c in clusters]) for name, totals in self.sums.items()}
        return ShardSums(clusters, [self.counts[c] for c in clusters], sums, self.failed)


def shard_path(cache: Path, shard: int) -> Path:
    return cache / f"{SHARD_PREFIX}{shard:06d}.safetensors"


def _save_shard(path: Path, shard: ShardSums) -> None:
    # float32 on disk (a ViT-H plus shard touching 64 clusters is 84 MB, not 168); reduced in float64
    tensors = {f"sum.{name}": tensor.float() for name, tensor in shard.sums.items()}
    tensors["clusters"] = torch.tensor(shard.clusters, dtype=torch.long)
    tensors["counts"] = torch.tensor(shard.counts, dtype=torch.long)
    save_safetensors(tensors, path, {"failed": [[i, why] for i, why in shard.failed]})


def load_shard(path: Path) -> ShardSums:
    from ..weights import read_metadata

    state = load_state_dict(path)
    failed = [(int(i), str(why)) for i, why in read_metadata(path).get("failed", [])]
    sums = {key[4:]: tensor for key, tensor in state.items() if key.startswith("sum.")}
    return ShardSums(state["clusters"].tolist(), state["counts"].tolist(), sums, failed)


def extract_shards(paths: Sequence[Path], labels: Sequence[int], encoder, cache: Path, shard_size: int,
                   batch_size: int, workers: int, process_index: int = 0, num_processes: int = 1,
                   show_progress: bool = True, stop_after: int | None = None) -> int:
    """Encode this process's missing shards into ``cache``; returns how many it wrote.
    ``stop_after`` (tests) stops after that many shards, as an interrupt would."""
    from tqdm import tqdm

    shards = range((len(paths) + shard_size - 1) // shard_size)
    todo = [s for s in shards if s % num_processes == process_index and not shard_path(cache, s).is_file()]
    if stop_after is not None:
        todo = todo[:stop_after]
    if not todo:
        return 0
    batches = [list(range(start, min(start + batch_size, end)))
               for s in todo for end in [min((s + 1) * shard_size, len(paths))]
               for start in range(s * shard_size, end, batch_size)]
    loader = torch.utils.data.DataLoader(CroppedImages(paths, encoder.image_size), batch_sampler=batches,
                                         num_workers=workers, collate_fn=collate)
    total = sum(len(b) for b in batches)
    done_images, started = 0, time.perf_counter()
    current, shard_sums = None, ShardAccumulator()
    with tqdm(total=total, desc=f"bank features [{process_index}]" if num_processes > 1 else "bank features",
              unit="img", file=sys.stderr, disable=not show_progress, position=process_index) as progress:
        for batch, (indices, pixels, bad) in zip(batches, loader):
            shard = batch[0] // shard_size
            if current is not None and shard != current:
                _save_shard(shard_path(cache, current), shard_sums.result())
                shard_sums = ShardAccumulator()
            current = shard
            shard_sums.failed.extend(bad)
            if pixels is not None:
                features = {name: value.cpu() for name, value in encoder.features(pixels).items()}
                shard_sums.add(features, [labels[i] for i in indices])
            done_images += len(batch)
            progress.update(len(batch))
            progress.set_postfix_str(f"{done_images / max(time.perf_counter() - started, 1e-9):.1f} images/s")
        _save_shard(shard_path(cache, current), shard_sums.result())
    return len(todo)


def reduce_shards(cache: Path, count: int, clusters: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, list]:
    """(feature -> float64 sums [clusters, ...], counts [clusters], failed (index, why)) over all
    ``count`` shards, added in shard order."""
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(clusters, dtype=torch.long)
    failed: list[tuple[int, str]] = []
    for shard in range(count):
        path = shard_path(cache, shard)
        if not path.is_file():
            raise InvalidInputError(f"{cache}: feature shard {shard} is missing; run the build again to finish it")
        part = load_shard(path)
        failed.extend(part.failed)
        if not part.clusters:
            continue
        index = torch.tensor(part.clusters)
        counts[index] += torch.tensor(part.counts)
        for name, tensor in part.sums.items():
            if name not in sums:
                sums[name] = torch.zeros(clusters, *tensor.shape[1:], dtype=torch.float64)
            sums[name][index] += tensor.double()
    return sums, counts, failed


def check_manifest(cache: Path, manifest: dict) -> None:
    """The cache must belong to this very build (same images, captions, encoders, settings)."""
    path = cache / "manifest.json"
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        if found != manifest:
            changed = sorted(k for k in set(found) | set(manifest) if found.get(k) != manifest.get(k))
            raise InvalidInputError(f"the feature cache {cache} belongs to another build (differs in {changed}); "
                                    "delete it or pass another --cache-dir")
        return
    import os

    from ..atomic import temp_beside

    cache.mkdir(parents=True, exist_ok=True)
    with temp_beside(path) as tmp:
        tmp.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
