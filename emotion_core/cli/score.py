"""``emotion-director score``: the emotion distribution of each image under a critic."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from ..errors import InvalidInputError
from . import add_json_flag


def positive_int(text: str) -> int:
    message = f"expected a positive integer, got {text!r}"
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(message) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(message)
    return value


def register(commands) -> None:
    parser = commands.add_parser("score", help="emotion distribution of images under a critic",
                                 description="Score images with an emotion critic; one result per image.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any sizes)")
    parser.add_argument("--critic", required=True, metavar="FILE", help="critic weight file (.safetensors)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Iterator[dict]:
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise InvalidInputError(f"image not found: {', '.join(missing)}")
    from ..critics import load_critic

    critic = load_critic(args.critic, device=args.device)
    return _score(critic, args.images, args.batch_size)


def _score(critic, paths: list[str], batch_size: int) -> Iterator[dict]:
    """Stream results in input order; same-size images in a chunk share a forward pass."""
    import torch

    from ..images import load_image
    from ..taxonomy import EMOTIONS, as_dict

    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images = [load_image(p) for p in chunk]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[1:3]), []).append(i)
        probs: dict[int, torch.Tensor] = {}
        for indices in by_size.values():
            probs.update(zip(indices, critic.predict(torch.cat([images[i] for i in indices]), batch_size=batch_size)))
        for i, path in enumerate(chunk):
            row = probs[i]
            yield {"image": path, "distribution": as_dict(row.tolist()), "top": EMOTIONS[int(row.argmax())]}
