"""``emotion-director dev``: developer helpers (test models for workflows and CI)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from .arguments import seed_int


def register(commands) -> None:
    parser = commands.add_parser("dev", help="developer helpers")
    sub = parser.add_subparsers(dest="dev_command", metavar="DEV_COMMAND", parser_class=type(parser))
    sub.required = True
    make = sub.add_parser(
        "make-test-models",
        help="write tiny random-weight models in every format this project reads into DIR (a ComfyUI models/ tree)",
    )
    make.add_argument("dir", type=Path, help="target models/ folder, e.g. ComfyUI/models")
    make.add_argument("--with-checkpoint", action="store_true",
                      help="also write small SD1.5 and SDXL checkpoints, Flux and SD3.5 diffusion models with their VAE, "
                      "tiny CLIP-L/CLIP-G/T5 text encoders and a CLIP-vision file, in the layouts ComfyUI detects "
                      "(~4 GB)")
    make.add_argument("--with-diffusers", action="store_true",
                      help="also write a tiny diffusers SD pipeline with image encoder and adapters (~26 MB) to "
                      "diffusers/test_sd15_tiny, for `generate`")
    make.add_argument("--with-emoeditor-release", action="store_true",
                      help="also write EmoEditor's three released files in upstream's layouts (torch.save'd, "
                      "model_ip2p.pt fp16) to emoeditor/, as a user downloads them, and convert them as the README "
                      "says into the files the emoeditor_edit workflow loads (~1 GB)")
    make.add_argument("--with-emoset", action="store_true",
                      help="also write a tiny EmoSet-118K tree in its published layout (image/, annotation/ attribute "
                      "JSONs, train/val/test.json, info.json) to DIR/datasets/emoset_tiny and a tiny EmoPair tree "
                      "(EmoEditor's json/data_EmoPair.json + EmoPair/) to DIR/datasets/emopair_tiny, for bank build "
                      "and train-dpo --dry-run")
    make.add_argument("--seed", type=seed_int, default=0)
    add_json_flag(make)
    make.set_defaults(handler=make_test_models)


def make_test_models(args: argparse.Namespace) -> dict:
    from ..errors import InvalidInputError
    from ..testing.assets import make_test_models as write

    if args.dir.exists() and not args.dir.is_dir():
        raise InvalidInputError(f"DIR must be a folder (a ComfyUI models/ tree), got the file {args.dir}")
    written = write(args.dir, with_checkpoint=args.with_checkpoint, seed=args.seed, with_diffusers=args.with_diffusers,
                    with_emoeditor_release=args.with_emoeditor_release, with_emoset=args.with_emoset)
    return {"models_dir": str(args.dir), "files": {role: str(path) for role, path in written.items()}}
