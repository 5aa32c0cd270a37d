"""``emotion-director score``: the emotion distribution of each image under a critic;
with ``--target`` also EmoEdit's Emo-A, with ``--against SOURCE`` the edit metrics
(SSIM, EmoEditor's ESMI, EmoEdit's Emo-S; see ``emotion_core.metrics``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import positive_int


def register(commands) -> None:
    parser = commands.add_parser("score", help="emotion distribution of images under a critic",
                                 description="Score images with an emotion critic; one result per image.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any sizes)")
    parser.add_argument("--critic", required=True, metavar="FILE", help="critic weight file (.safetensors)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--target", metavar="EMOTION", help="target emotion: adds emo_a (top-1 is the target) "
                        "and target_probability")
    parser.add_argument("--against", metavar="SOURCE", help="source image the IMAGEs were edited from: adds ssim, "
                        "ssim_emoeditor, ssim_emoedit, esmi (x100) and emo_s; needs --target")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Iterator[dict]:
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise InvalidInputError(f"image not found: {', '.join(missing)}")
    target = _target(args)
    from ..critics import load_critic
    from ..metrics.scoring import score_files, with_edit_metrics

    critic = load_critic(args.critic, device=args.device)
    results = score_files(critic, args.images, args.batch_size)
    if target is None:
        return results
    return with_edit_metrics(critic, results, target, args.against)


def _target(args: argparse.Namespace) -> str | None:
    from ..taxonomy import parse_emotion

    if args.against is not None:
        if args.target is None:
            raise InvalidInputError("--against needs --target: the edit metrics are measured toward a target emotion")
        if not Path(args.against).is_file():
            raise InvalidInputError(f"source image not found: {args.against}")
    return None if args.target is None else parse_emotion(args.target)
