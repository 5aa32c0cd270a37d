"""``emotion-director edit IMAGE --target E --model PATH --critic FILE --out PNG``: edit an
image toward an emotion with the Emotion Critic Loop (Iterative Emotion Inference) on
the diffusers pipeline. Each pass is an SDEdit of the image being edited, with the text
conditioning steered along the re-estimated direction (training-free Emotion
Conditioning); the best candidate is written once the loop has finished.

``--emoeditor --unet U --vae V --encoder ENC``: EmoEditor's own procedure instead
(``edit_emoeditor``): its InstructPix2Pix passes with emotion-encoder tokens, and the loop
of its test.py, decision for decision."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidInputError
from ..report import write_metadata_png, write_new_json
from . import add_json_flag
from .arguments import (
    existing_refused,
    finite_float,
    non_negative_float,
    positive_int,
    refuse_existing,
    seed_int,
)
from .edit_emoeditor import (
    INSTRUCTION_SCALE,
    add_emoeditor_arguments,
    check_emoeditor_options,
    run_emoeditor,
)
from .loop_common import add_loop_arguments, loop_settings

SDEDIT_ONLY = {"model": None, "prompt": "", "negative_prompt": "", "scheduler": "ddim"}  # dest -> default


def register(commands) -> None:
    from ..critic_loop import EMOEDITOR_NUM_LOOP, LoopSettings
    from ..pipeline import SCHEDULER_NAMES

    parser = commands.add_parser("edit", help="edit an image toward an emotion (Emotion Critic Loop)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", metavar="IMAGE", help="image to edit")
    parser.add_argument("--target", required=True, help="target emotion, or a blend 'awe:0.7, contentment:0.3'")
    parser.add_argument("--model", metavar="PATH", help="SD1.5 diffusers folder or .safetensors checkpoint "
                        "(not with --emoeditor)")
    parser.add_argument("--out", required=True, metavar="PNG", help="where to write the best image")
    parser.add_argument("--prompt", default=SDEDIT_ONLY["prompt"], help="text describing the image (default empty)")
    parser.add_argument("--negative-prompt", default=SDEDIT_ONLY["negative_prompt"],
                        help="negative prompt (default empty)")
    parser.add_argument("--strength", type=finite_float, default=1.0, help="direction strength 0..2 (default 1)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--steps", type=positive_int, default=30,
                        help="full-schedule steps; a pass at denoise d runs int(steps*d) (default 30; --emoeditor: "
                        "DDIM steps of every pass)")
    parser.add_argument("--cfg", type=non_negative_float, default=INSTRUCTION_SCALE,
                        help="classifier-free guidance scale (default 7.5; --emoeditor: the instruction's scale "
                        "with --image-guidance)")
    parser.add_argument("--scheduler", choices=SCHEDULER_NAMES, default=SDEDIT_ONLY["scheduler"],
                        help="scheduler (default ddim)")
    add_loop_arguments(parser, critic_required=True, max_iterations_help=(
        f"hard cap on passes (default {LoopSettings().max_iterations}); with --emoeditor test.py's num_loop: "
        f"stop once this many images are kept, the source included (default {EMOEDITOR_NUM_LOOP})"))
    add_emoeditor_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> dict:
    check_emoeditor_options(args)
    if args.emoeditor:
        misplaced = [f"--{dest.replace('_', '-')}" for dest, default in SDEDIT_ONLY.items()
                     if getattr(args, dest) != default]
        if misplaced:
            raise InvalidInputError(f"{misplaced[0]} does not apply with --emoeditor (EmoEditor edits with its "
                                    "InstructPix2Pix UNet and emotion tokens, no text)")
    elif args.model is None:
        raise InvalidInputError("edit needs --model (an SD1.5 model), or --emoeditor with --unet, --vae and "
                                "--encoder")
    out = Path(args.out)
    refuse_existing([out] + ([Path(args.report)] if args.report else []), args.overwrite)
    result, procedure = run_emoeditor(args) if args.emoeditor else _run_sdedit(args)

    from ..critic_loop.summary import summary

    outcome = summary(result.report)
    meta = {"command": "edit", "source": Path(args.image).name, "target": outcome["target"], "seed": args.seed,
            "best": outcome["best"], "pick": outcome["pick"], **procedure}
    with existing_refused(out):
        write_metadata_png(result.best_image[0], out, meta, replace=args.overwrite)
    if args.report:
        with existing_refused(args.report):
            write_new_json(args.report, result.report, replace=args.overwrite)
    return {"image": str(out), "source": args.image, "target": outcome["target"], "passes": outcome["passes"],
            "stopped": outcome["stopped"], "best": outcome["best"], "pick": outcome["pick"],
            "ssim": outcome["best_ssim"], "distribution": outcome["best_distribution"], "report": args.report,
            **procedure}


def _run_sdedit(args: argparse.Namespace):
    """The SDEdit loop on an SD1.5 pipeline; ``(LoopResult, {"procedure": "sdedit"})``."""
    from ..direction import make_direction
    from ..images import crop_to_multiple, load_image
    from ..pipeline.sizes import SIZE_MULTIPLE

    settings = loop_settings(args)
    target = make_direction(args.target, args.strength)
    source = crop_to_multiple(load_image(args.image), SIZE_MULTIPLE, args.image)

    from ..critics import load_critic
    from ..pipeline import load_pipeline, use_scheduler
    from ..pipeline.branches import prompt_branches
    from ..pipeline.critic_loop import run_pipeline_loop

    critic = load_critic(args.critic, device=args.device)
    pipe = load_pipeline(args.model, device=args.device)
    use_scheduler(pipe, args.scheduler)
    height, width = source.shape[1:3]
    result = run_pipeline_loop(pipe, critic, target, settings,
                               prompt_branches(pipe, args.prompt, args.negative_prompt, args.cfg),
                               steps=args.steps, width=width, height=height, source=source)
    return result, {"procedure": "sdedit"}
