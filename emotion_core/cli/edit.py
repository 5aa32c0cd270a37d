"""``emotion-director edit IMAGE --target E --model PATH --critic FILE --out PNG``: edit an
image toward an emotion with the Emotion Critic Loop (Iterative Emotion Inference) on
the diffusers pipeline. Each pass is an SDEdit of the image being edited, with the text
conditioning steered along the re-estimated direction (training-free Emotion
Conditioning); the best candidate is written once the loop has finished."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .score import positive_int

log = logging.getLogger(__name__)
SIZE_MULTIPLE = 8


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from exc
    return value


def register(commands) -> None:
    from ..critic_loop.settings import DEFAULT_RULE, RULES
    from ..pipeline import SCHEDULER_NAMES

    parser = commands.add_parser("edit", help="edit an image toward an emotion (Emotion Critic Loop)",
                                 description=__doc__)
    parser.add_argument("image", metavar="IMAGE", help="image to edit")
    parser.add_argument("--target", required=True, help="target emotion, or a blend 'awe:0.7, contentment:0.3'")
    parser.add_argument("--model", required=True, metavar="PATH", help="SD1.5 diffusers folder or .safetensors checkpoint")
    parser.add_argument("--critic", required=True, metavar="FILE", help="emotion critic file")
    parser.add_argument("--out", required=True, metavar="PNG", help="where to write the best image")
    parser.add_argument("--report", metavar="JSON", help="also write the full per-pass report here")
    parser.add_argument("--prompt", default="", help="text describing the image (default empty)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt (default empty)")
    parser.add_argument("--strength", type=float, default=1.0, help="direction strength 0..2 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--steps", type=positive_int, default=30,
                        help="full-schedule steps; a pass at denoise d runs int(steps*d) (default 30)")
    parser.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--scheduler", choices=SCHEDULER_NAMES, default="ddim", help="scheduler (default ddim)")
    parser.add_argument("--denoise-min", type=_unit, default=0.55, help="lowest denoise drawn per pass (default 0.55)")
    parser.add_argument("--denoise-max", type=_unit, default=0.85, help="highest denoise drawn per pass (default 0.85)")
    parser.add_argument("--ssim-min", type=_unit, default=0.5, help="SSIM window low end (default 0.5)")
    parser.add_argument("--ssim-max", type=_unit, default=0.8, help="SSIM window high end (default 0.8)")
    parser.add_argument("--confidence", type=_unit, default=0.6, help="stop at this target probability (default 0.6)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help=f"acceptance rule (default {DEFAULT_RULE})")
    parser.add_argument("--max-iterations", type=int, default=8, help="hard cap on passes (default 8)")
    parser.add_argument("--candidates", type=int, default=1, help="candidates per pass, one batch (default 1)")
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
    from ..critic_loop import LoopSettings
    from ..direction import make_direction

    settings = LoopSettings(args.ssim_min, args.ssim_max, args.confidence, args.rule, args.max_iterations,
                            args.candidates, args.denoise_min, args.denoise_max, args.seed)
    target = make_direction(args.target, args.strength)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InvalidInputError(f"{out} exists; pass --overwrite to replace it")
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
        _write_json(Path(args.report), result.report, args.overwrite)
    best = result.report["best"]
    return {"image": str(out), "source": args.image, "target": result.report["target"], "passes": result.report["passes"],
            "stopped": result.report["stopped"], "best": best["index"], "pick": best["pick"], "ssim": best["ssim"],
            "distribution": best["distribution"], "report": args.report}


def edit(pipe, critic, source, target, settings, args: argparse.Namespace):
    """Run the loop on ``pipe``: every pass SDEdits the image being edited at the drawn denoise
    (the source is VAE-encoded once; a chained pass starts from the candidate's latents)."""
    import sys

    from tqdm import tqdm

    from ..conditioning import Encoded, apply_delta, emotion_delta
    from ..critic_loop import Candidates, run_critic_loop
    from ..pipeline import cfg_guidance, encode_image, encode_prompts, sample

    positive, negative = encode_prompts(pipe, [args.prompt, args.negative_prompt])
    source_latents = encode_image(pipe, source)  # once; chained passes start from a candidate's own latents

    def encode(text: str) -> Encoded:
        return Encoded(encode_prompts(pipe, [text])[0])

    def steer(direction):
        delta = emotion_delta(encode, direction)
        return positive if delta is None else apply_delta(positive, None, delta)[0]

    height, width = source.shape[1:3]
    bar = tqdm(total=settings.max_iterations, desc="passes", file=sys.stderr, leave=False)

    def generate(seeds, denoise, state):
        result = sample(pipe, [state.conditioning, negative], cfg_guidance(args.cfg), seed=seeds[0], steps=args.steps,
                        width=width, height=height, batch=len(seeds), denoise=denoise, progress=False,
                        init_latents=source_latents if state.base_latent is None else state.base_latent)
        bar.update(1)
        return Candidates(result.images, result.latents)

    try:
        return run_critic_loop(generate, critic.predict, target, settings, source=source, update_conditioning=steer)
    finally:
        bar.close()


def _write_json(path: Path, report: dict, overwrite: bool) -> None:
    """Whole file or nothing: written beside the target, then moved into place."""
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
