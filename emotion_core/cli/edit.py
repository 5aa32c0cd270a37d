"""``emotion-director edit IMAGE --target E --model PATH --critic FILE --out PNG``: edit an
image toward an emotion with the Emotion Critic Loop (Iterative Emotion Inference) on
the diffusers pipeline. Each pass is an SDEdit of the image being edited, with the text
conditioning steered along the re-estimated direction (training-free Emotion
Conditioning); the best candidate is written once the loop has finished."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import positive_int, refuse_existing
from .loop_common import (
    add_loop_arguments,
    loop_settings,
    run_pipeline_loop,
    write_report,
)

log = logging.getLogger(__name__)
SIZE_MULTIPLE = 8


def register(commands) -> None:
    from ..pipeline import SCHEDULER_NAMES

    parser = commands.add_parser("edit", help="edit an image toward an emotion (Emotion Critic Loop)",
                                 description=__doc__)
    parser.add_argument("image", metavar="IMAGE", help="image to edit")
    parser.add_argument("--target", required=True, help="target emotion, or a blend 'awe:0.7, contentment:0.3'")
    parser.add_argument("--model", required=True, metavar="PATH", help="SD1.5 diffusers folder or .safetensors checkpoint")
    parser.add_argument("--out", required=True, metavar="PNG", help="where to write the best image")
    parser.add_argument("--prompt", default="", help="text describing the image (default empty)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt (default empty)")
    parser.add_argument("--strength", type=float, default=1.0, help="direction strength 0..2 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--steps", type=positive_int, default=30,
                        help="full-schedule steps; a pass at denoise d runs int(steps*d) (default 30)")
    parser.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--scheduler", choices=SCHEDULER_NAMES, default="ddim", help="scheduler (default ddim)")
    add_loop_arguments(parser, critic_required=True)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def _source(path: str):
    from ..images import load_image

    if not Path(path).is_file():
        raise InvalidInputError(f"image not found: {path}")
    image = load_image(path)
    height = image.shape[1] // SIZE_MULTIPLE * SIZE_MULTIPLE
    width = image.shape[2] // SIZE_MULTIPLE * SIZE_MULTIPLE
    if not height or not width:
        raise InvalidInputError(f"{path} is {image.shape[1]}x{image.shape[2]}; edit needs at least 8x8 pixels")
    return image[:, :height, :width]


def run(args: argparse.Namespace) -> dict:
    from ..direction import make_direction

    settings = loop_settings(args)
    target = make_direction(args.target, args.strength)
    out = Path(args.out)
    refuse_existing([out] + ([Path(args.report)] if args.report else []), args.overwrite)
    source = _source(args.image)

    from ..critics import load_critic
    from ..pipeline import load_pipeline, use_scheduler

    critic = load_critic(args.critic, device=args.device)
    pipe = load_pipeline(args.model, device=args.device)
    use_scheduler(pipe, args.scheduler)
    result = edit(pipe, critic, source, target, settings, args)

    from .generate import write_png

    meta = {"command": "edit", "source": Path(args.image).name, "target": result.report["target"], "seed": args.seed,
            "best": result.report["best"]["index"], "pick": result.report["best"]["pick"]}
    write_png(result.best_image[0], out, meta, args.overwrite)
    if args.report:
        write_report(Path(args.report), result.report, args.overwrite)
    best = result.report["best"]
    return {"image": str(out), "source": args.image, "target": result.report["target"], "passes": result.report["passes"],
            "stopped": result.report["stopped"], "best": best["index"], "pick": best["pick"], "ssim": best["ssim"],
            "distribution": best["distribution"], "report": args.report}


def edit(pipe, critic, source, target, settings, args: argparse.Namespace):
    """Run the loop on ``pipe``: every pass SDEdits the image being edited at the drawn denoise
    (the source is VAE-encoded once; a chained pass starts from the candidate's latents)."""
    from ..pipeline import cfg_guidance, encode_prompts

    positive, negative = encode_prompts(pipe, [args.prompt, args.negative_prompt])
    height, width = source.shape[1:3]
    return run_pipeline_loop(pipe, critic, target, settings, positive=positive,
                             branches=lambda steered: [steered, negative], guidance=cfg_guidance(args.cfg),
                             steps=args.steps, width=width, height=height, source=source)
