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
                        "ssim_emoeditor, esmi (x100) and emo_s; needs --target")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Iterator[dict]:
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise InvalidInputError(f"image not found: {', '.join(missing)}")
    target = _target(args)
    from ..critics import load_critic

    critic = load_critic(args.critic, device=args.device)
    results = _score(critic, args.images, args.batch_size)
    if target is None:
        return results
    return _with_metrics(critic, results, target, args.against)


def _target(args: argparse.Namespace) -> str | None:
    from ..taxonomy import parse_emotion

    if args.against is not None:
        if args.target is None:
            raise InvalidInputError("--against needs --target: the edit metrics are measured toward a target emotion")
        if not Path(args.against).is_file():
            raise InvalidInputError(f"source image not found: {args.against}")
    return None if args.target is None else parse_emotion(args.target)


def _with_metrics(critic, results: Iterator[dict], target: str, against: str | None) -> Iterator[dict]:
    """Add Emo-A (and with a source SSIM, ESMI, Emo-S) to each result; source work is done once."""
    import torch

    from ..images import load_image
    from ..metrics import emo_a, emo_s, esmi, prepare_source, ssim
    from ..taxonomy import EMOTIONS

    source = reference = source_distribution = None
    if against is not None:
        source = load_image(against)
        reference = prepare_source(critic, source)
        source_distribution = critic.predict(source)[0]
    for result in results:
        distribution = torch.tensor([[result["distribution"][e] for e in EMOTIONS]])
        result["emo_a"] = float(emo_a(distribution, target)[0])
        result["target_probability"] = result["distribution"][target]
        if source is not None:
            image = load_image(result["image"])
            same_size = _resized_to(image, source.shape[1:3])
            result["ssim"] = float(ssim(source, same_size)[0])
            result["ssim_emoeditor"] = float(ssim(source, image, mode="emoeditor")[0])
            result["esmi"] = float(esmi(critic, reference, image, target).esmi[0])
            result["emo_s"] = float(emo_s(distribution, source_distribution, target)[0])
        yield result


def _resized_to(image, size: tuple[int, int]):
    """``image`` at the source's size (standard SSIM compares pixel grids of one size)."""
    import torch.nn.functional as F

    if tuple(image.shape[1:3]) == tuple(size):
        return image
    pixels = F.interpolate(image.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=True)
    return pixels.clamp(0, 1).permute(0, 2, 3, 1)


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
