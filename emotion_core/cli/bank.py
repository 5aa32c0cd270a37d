"""``emotion-director bank build``: an MC-Diffusion prompt bank from EmoSet-118K or an
emotion-labelled folder."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import non_negative_int, positive_int, safetensors_out, seed_int

BANK_KIND_NAMES = ("ip-adapter", "ip-adapter-plus", "flux-redux")  # store.BANK_KINDS, without importing torch here


def register(commands) -> None:
    parser = commands.add_parser("bank", help="MC-Diffusion prompt banks",
                                 description="Build prompt banks of per-emotion text/visual cluster centres.")
    actions = parser.add_subparsers(dest="bank_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    build = actions.add_parser(
        "build", help="build a bank from EmoSet-118K or a folder of emotion-labelled images",
        description="EmoSet-118K as released (image/, annotation/, train/val/test.json; captions from each "
        "image's annotated attributes) or one sub-folder per emotion (captions from <image>.txt or the folder's "
        "captions.jsonl). Per emotion, K-means (scikit-learn) over CLIP text features of the captions; each "
        "cluster's visual centre is the mean image feature of its members. Degenerate captions (e.g. file names) "
        "stop the build. Image features stream through a DataLoader into a resumable cache (OUT.cache/); under "
        "`accelerate launch ... -m emotion_core bank build ...` every process extracts a share.")
    build.add_argument("--images", required=True, metavar="DIR",
                       help="EmoSet-118K root (with image/ and annotation/) or a folder with one sub-folder per emotion")
    build.add_argument("--split", choices=("train", "val", "test", "all"), default="train",
                       help="EmoSet-118K split list to read (default train; all: every image under image/)")
    build.add_argument("--clip", required=True, metavar="FILE",
                       help="open_clip CLIP file (both towers, e.g. a CLIP zero-shot critic file); keep it in "
                       "models/emotion_critic/ under this name: the bank node reads its text tower from there")
    build.add_argument("--out", required=True, metavar="FILE", help="bank file to write (.safetensors)")
    build.add_argument("--kind", choices=tuple(BANK_KIND_NAMES), default="ip-adapter",
                       help="adapter the bank serves: ip-adapter (base: pooled image_embeds, default) or "
                       "ip-adapter-plus (Resampler: CLIP vision hidden states; needs --clip-vision), "
                       "flux-redux (Flux Redux: SigLIP so400m sequences; needs --siglip)")
    build.add_argument("--clusters", type=positive_int, default=8, metavar="K", help="clusters per emotion (default 8)")
    build.add_argument("--image-encoder", choices=("clip", "dino", "clip-vision", "siglip"), default=None,
                       help="visual features: the CLIP file's image tower (default for ip-adapter), a DINOv2 model "
                       "(--dino), or IP-Adapter's CLIP vision model (--clip-vision; default for ip-adapter-plus)")
    build.add_argument("--siglip", metavar="DIR", help="local transformers SiglipVisionModel folder "
                       "(google/siglip-so400m-patch14-384; for --kind flux-redux)")
    build.add_argument("--dino", metavar="DIR", help="local transformers Dinov2Model folder (with --image-encoder dino)")
    build.add_argument("--clip-vision", metavar="DIR",
                       help="IP-Adapter's image_encoder folder (transformers CLIPVisionModelWithProjection)")
    build.add_argument("--seed", type=seed_int, default=0, help="K-means seed (default 0)")
    build.add_argument("--strict", action="store_true", help="a missing EmoSet annotation file is an error")
    build.add_argument("--allow-degenerate-captions", action="store_true",
                       help="build even when most of an emotion's captions are identical (clusters collapse)")
    build.add_argument("--batch-size", type=positive_int, default=32, help="images per encoder batch (default 32)")
    build.add_argument("--workers", type=non_negative_int, default=min(4, os.cpu_count() or 1),
                       help="DataLoader worker processes decoding images (default min(4, CPUs))")
    build.add_argument("--shard-size", type=positive_int, default=4096,
                       help="images per cached feature shard: the unit a resumed build redoes, and of cache disk "
                       "use (default 4096: EmoSet-118K's train split in 24 shards)")
    build.add_argument("--cache-dir", metavar="DIR", help="feature cache (default OUT.cache); an interrupted build "
                       "resumes from it")
    build.add_argument("--keep-cache", action="store_true", help="keep the feature cache after a finished build")
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_json_flag(build)
    build.set_defaults(handler=run_build)


def _settings(args: argparse.Namespace):
    from ..bank.build import BuildSettings

    encoder = args.image_encoder or {"ip-adapter-plus": "clip-vision", "flux-redux": "siglip"}.get(args.kind, "clip")
    if (encoder == "siglip") != (args.siglip is not None) or (args.kind == "flux-redux") != (encoder == "siglip"):
        raise InvalidInputError("--kind flux-redux stores SigLIP sequences: it needs --siglip DIR, and only it does")
    if (encoder == "dino") != (args.dino is not None):
        raise InvalidInputError("--dino DIR is needed with --image-encoder dino, and only with it")
    if (encoder == "clip-vision") != (args.clip_vision is not None):
        raise InvalidInputError("--clip-vision DIR is needed for --kind ip-adapter-plus / --image-encoder "
                                "clip-vision, and only with them")
    if args.kind == "ip-adapter-plus" and encoder != "clip-vision":
        raise InvalidInputError("--kind ip-adapter-plus stores CLIP vision hidden states: use --clip-vision DIR")
    for flag, folder in (("--dino", args.dino), ("--clip-vision", args.clip_vision), ("--siglip", args.siglip)):
        if folder is not None and not Path(folder).is_dir():
            raise InvalidInputError(f"{flag} folder not found: {folder}")
    return BuildSettings(clusters=args.clusters, seed=args.seed, kind=args.kind, image_encoder=encoder,
                         dino=args.dino, clip_vision=args.clip_vision, siglip=args.siglip,
                         split=None if args.split == "all" else args.split, strict=args.strict,
                         allow_degenerate_captions=args.allow_degenerate_captions, batch_size=args.batch_size,
                         workers=args.workers, shard_size=args.shard_size, cache_dir=args.cache_dir,
                         keep_cache=args.keep_cache)


def run_build(args: argparse.Namespace) -> dict | None:
    out = safetensors_out(args.out, args.overwrite)
    settings = _settings(args)
    if not Path(args.clip).is_file():
        raise InvalidInputError(f"--clip file not found: {args.clip}")
    from ..bank.build import build_bank, remove_cache
    from ..bank.store import save_bank

    started = time.perf_counter()
    bank = build_bank(args.images, args.clip, settings, out=out)
    if bank is None:  # another process of a multi-process launch: the main one writes the bank
        return None
    save_bank(bank, out)
    if not settings.keep_cache:
        remove_cache(Path(settings.cache_dir) if settings.cache_dir else Path(f"{out}.cache"))
    meta = bank.metadata
    return {"bank": str(out), "built_for": bank.kind.name, "images": sum(meta["images"].values()),
            "per_emotion": meta["images"], "clusters": {e: int(c.shape[0]) for e, c in bank.counts.items()},
            "text_dim": bank.text_dim, "visual_dim": bank.visual_dim, "image_encoder": meta["image_encoder"]["kind"],
            "split": meta["split"], "missing_annotations": meta["missing_annotations"],
            "unreadable_images": meta["unreadable_images"], "seconds": round(time.perf_counter() - started, 3)}
