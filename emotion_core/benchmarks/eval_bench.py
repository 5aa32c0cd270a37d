"""``bench eval``: how fast ``eval score`` scores images with each published critic layout on
this machine, pinned to one CPU thread, and what EmoSet's test split would take.

- Critics, full size with random weights (speed does not depend on the values): EmoEditor's
  ResNet-18 predictor (224 px), EmoEdit's probe (CLIP ViT-B/32 + 512->256->8), EmoGen's probe
  (CLIP ViT-L/14 + 768->8).
- Work measured: ``eval``'s own path (``loading.ItemImages`` decoding 512x512 JPEGs,
  ``rows.RowScorer``), one critic at a time, after one warm-up batch. ``edit_pairs_per_second``:
  the same with sources, i.e. every edit metric too (EmoEdit's 512 px SSIM and Emo-S, ESMI
  with its GradCAM, EmoEditor's gate), for the ResNet-18.
- Rates per wall-clock second and per CPU second of the process (the two differ when the machine
  is shared). Extrapolation: ``emoset_test_images / images_per_second`` (``_cpu_hours``: per CPU
  second, what one otherwise idle core would take). EmoSet-118K has 118,102 labelled
  images (EmoSet README) split 80/5/15 % into train/val/test (EmoSet paper, ICCV 2023, Sec. 5),
  so its test list holds about 17,716 images; ``--emoset DIR`` counts the entries of the
  dataset's own ``test.json`` instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

EMOSET_LABELLED = 118_102  # EmoSet README: "118,102 of these images are carefully labeled"
EMOSET_TEST_FRACTION = 0.15  # EmoSet paper: 80% / 5% / 15% train / val / test
CRITICS = ("emoeditor_resnet18", "emoedit_vit_b32", "emogen_vit_l14")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=16, help="images timed per critic (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--critics", default=",".join(CRITICS), help=f"comma-separated subset of {', '.join(CRITICS)}")
    parser.add_argument("--emoset", metavar="DIR", help="EmoSet-118K folder: take the test split size from test.json")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and images (default 0)")


def _critic(name: str):
    import open_clip
    from torch import nn

    from ..critics.clip_backbone import ClipPreprocess
    from ..critics.clip_probe import ClipProbeCritic
    from ..critics.resnet_predictor import EmoEditorResNetCritic, build_resnet18

    if name == "emoeditor_resnet18":
        return EmoEditorResNetCritic(build_resnet18()).eval()
    model_name, layout = {"emoedit_vit_b32": ("ViT-B-32", "emoedit"), "emogen_vit_l14": ("ViT-L-14", "emogen")}[name]
    config = open_clip.get_model_config(model_name)
    visual = open_clip.model.CLIP(**config).visual
    width = config["embed_dim"]
    head = nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 8)) if layout == "emoedit" else nn.Sequential(
        nn.Linear(width, 8))
    return ClipProbeCritic(visual, ClipPreprocess(config["vision_cfg"]["image_size"]), head, layout).eval()


def _test_split_size(emoset: str | None) -> tuple[int, str]:
    if emoset:
        entries = json.loads((Path(emoset) / "test.json").read_text(encoding="utf-8"))
        return len(entries), f"{emoset}/test.json"
    return round(EMOSET_LABELLED * EMOSET_TEST_FRACTION), "EmoSet paper: 15% of the 118,102 labelled images"


def _images(folder: Path, count: int, seed: int, with_sources: bool):
    import numpy as np
    from PIL import Image

    from ..evaluation.items import EvalItem

    rng = np.random.default_rng(seed)
    items = []
    for k in range(count):
        path = folder / f"img_{k}.jpg"
        Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(path, quality=90)
        items.append(EvalItem(k, path, "awe", path if with_sources else None, label=path.name))
    return items


def _rate(critic, items, batch_size: int) -> tuple[float, float]:
    """Images per wall-clock second and per CPU second of this process (the machine may be shared)."""
    from ..evaluation.loading import ItemImages, fixed_batches
    from ..evaluation.rows import RowScorer

    scorer, dataset = RowScorer({"critic": critic}, batch_size), ItemImages(items)
    batches = fixed_batches(len(items), batch_size)
    scorer.score([dataset[i] for i in batches[0]])  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        scorer.score([dataset[i] for i in batch])
    return len(items) / (time.perf_counter() - started), len(items) / (time.process_time() - cpu)


def run(args: argparse.Namespace) -> dict:
    import torch

    names = [name.strip() for name in args.critics.split(",") if name.strip()]
    unknown = [name for name in names if name not in CRITICS]
    if unknown:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"unknown critic {unknown[0]!r}; expected some of {', '.join(CRITICS)}")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    split, split_source = _test_split_size(args.emoset)
    result: dict = {"threads": 1, "images": args.images, "batch_size": args.batch_size, "emoset_test_images": split,
                    "emoset_test_source": split_source, "critics": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            items = _images(Path(tmp), args.images, args.seed, with_sources=False)
            for name in names:
                torch.manual_seed(args.seed)
                rate, cpu_rate = _rate(_critic(name), items, args.batch_size)
                result["critics"][name] = {"images_per_second": rate, "images_per_cpu_second": cpu_rate,
                                           "emoset_test_hours": split / rate / 3600.0,
                                           "emoset_test_cpu_hours": split / cpu_rate / 3600.0}
            if "emoeditor_resnet18" in names:
                pairs = _images(Path(tmp), args.images, args.seed, with_sources=True)
                torch.manual_seed(args.seed)
                rate, cpu_rate = _rate(_critic("emoeditor_resnet18"), pairs, args.batch_size)
                result["edit_pairs_per_second"], result["edit_pairs_per_cpu_second"] = rate, cpu_rate
                result["edit_pairs_emoset_test_hours"] = split / rate / 3600.0
                result["edit_pairs_emoset_test_cpu_hours"] = split / cpu_rate / 3600.0
    finally:
        torch.set_num_threads(previous)
    return result
