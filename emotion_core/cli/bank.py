"""``emotion-director bank build``: an MC-Diffusion prompt bank from an EmoSet-layout folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import positive_int, safetensors_out, seed_int


def register(commands) -> None:
    parser = commands.add_parser("bank", help="MC-Diffusion prompt banks",
                                 description="Build prompt banks of per-emotion text/visual cluster centres.")
    actions = parser.add_subparsers(dest="bank_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    build = actions.add_parser(
        "build", help="build a bank from a folder of emotion-labelled images",
        description="One sub-folder per emotion (EmoSet layout). Captions come from <image>.txt, the folder's "
        "captions.jsonl, or the file name. Per emotion, K-means over CLIP text features of the captions; each "
        "cluster's visual centre is the mean image feature of its members.")
    build.add_argument("--images", required=True, metavar="DIR", help="folder with one sub-folder per emotion")
    build.add_argument("--clip", required=True, metavar="FILE",
                       help="open_clip CLIP file (both towers, e.g. a CLIP zero-shot critic file); keep it in "
                       "models/emotion_critic/ under this name: the bank node reads its text tower from there")
    build.add_argument("--out", required=True, metavar="FILE", help="bank file to write (.safetensors)")
    build.add_argument("--clusters", type=positive_int, default=8, metavar="K", help="clusters per emotion (default 8)")
    build.add_argument("--image-encoder", choices=("clip", "dino"), default="clip",
                       help="visual features: the CLIP file's image tower (default; what IP-Adapter base reads when "
                       "it is the adapter's CLIP) or a DINOv2 model (--dino)")
    build.add_argument("--dino", metavar="DIR", help="local transformers Dinov2Model folder (with --image-encoder dino)")
    build.add_argument("--seed", type=seed_int, default=0, help="K-means seed (default 0)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_json_flag(build)
    build.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> dict:
    out = safetensors_out(args.out, args.overwrite)
    if (args.image_encoder == "dino") != (args.dino is not None):
        raise InvalidInputError("--dino DIR is needed with --image-encoder dino, and only with it")
    if not Path(args.clip).is_file():
        raise InvalidInputError(f"--clip file not found: {args.clip}")
    from ..bank.build import build_bank
    from ..bank.store import save_bank

    started = time.perf_counter()
    bank = build_bank(args.images, args.clip, args.clusters, args.image_encoder, args.dino, args.seed,
                      show_progress=True)
    save_bank(bank, out)
    meta = bank.metadata
    return {"bank": str(out), "images": sum(meta["images"].values()), "per_emotion": meta["images"],
            "clusters": {e: int(c.shape[0]) for e, c in bank.counts.items()}, "text_dim": bank.text_dim,
            "visual_dim": bank.visual_dim, "image_encoder": meta["image_encoder"]["kind"],
            "seconds": round(time.perf_counter() - started, 3)}
