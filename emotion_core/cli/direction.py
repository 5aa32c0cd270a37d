"""``emotion-director direction``: the emotion direction for a target (and a source image)."""

from __future__ import annotations

import argparse

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import finite_float


def register(commands) -> None:
    parser = commands.add_parser("direction", help="emotion direction: target minus the source image's emotions")
    parser.add_argument("--target", required=True, help="an emotion, or a blend like 'awe:0.7,contentment:0.3'")
    parser.add_argument("--strength", type=finite_float, default=1.0, help="0..2 (default 1)")
    parser.add_argument("--source", help="source image; its emotions are subtracted from the target")
    parser.add_argument("--critic", help="critic file that reads the source image (required with --source)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> dict:
    from ..direction import make_direction, source_distribution

    source = None
    if args.source is not None:
        if args.critic is None:
            raise InvalidInputError("--source needs --critic FILE to read the image's emotions")
        from ..critics import load_critic
        from ..images import load_image

        source = source_distribution(load_critic(args.critic).predict(load_image(args.source)))
    elif args.critic is not None:
        raise InvalidInputError("--critic is only used with --source IMAGE")
    return make_direction(args.target, args.strength, source).to_json()
