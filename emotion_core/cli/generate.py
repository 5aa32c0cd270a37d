"""``emotion-director generate``: text-to-image (or img2img) with an SD1.5-family model
through the diffusers pipeline, optionally guided by visual prompts (MC-Diffusion).

Every input is checked before a model is loaded; output files are never
overwritten without ``--overwrite`` and appear only complete (written beside
the target, then linked into place). Each PNG carries the run's settings as
JSON in the ``emotion_director`` text chunk (file names only, never paths or
secrets); ``--json`` prints the same object plus the image path, one per image.

``--critic-loop`` runs the Emotion Critic Loop (Iterative Emotion Inference, shared with
``edit``: ``emotion_core.pipeline.critic_loop``) instead of one sampling call: the first pass is plain
text-to-image (or an SDEdit of ``--init-image``, judged with SSIM against it), an accepted
candidate is refined by SDEdit passes along the re-estimated direction, and the best
candidate is written with the loop's outcome in its metadata.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import InvalidInputError
from ..guidance import SCHEDULES as GUIDANCE_SCHEDULES
from ..pipeline.sizes import SIZE_MULTIPLE, check_side
from ..report import write_metadata_png, write_new_json
from . import add_json_flag
from .arguments import (
    VisualPromptArg,
    existing_refused,
    finite_float,
    non_negative_float,
    positive_int,
    refuse_existing,
    seed_int,
)
from .loop_common import (
    add_loop_arguments,
    loop_options_given,
    loop_settings,
    loop_summary,
)

log = logging.getLogger(__name__)

DEFAULT_IMG2IMG_DENOISE = 0.75


def register(commands) -> None:
    parser = commands.add_parser(
        "generate", help="generate images for an emotion with an SD1.5-family model (diffusers)",
        description="Text-to-image or img2img through the diffusers pipeline, with optional visual prompts "
        "(IP-Adapter-layout adapter + images) guiding the mood. Image k of a batch uses seed SEED+k.")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="diffusers pipeline folder, or an original-layout SD1.5 .safetensors checkpoint")
    parser.add_argument("--emotion", required=True, help="target emotion (one of the eight Mikels emotions)")
    parser.add_argument("--strength", type=finite_float, default=1.0,
                        help="how strongly the emotion steers the text conditioning, 0..2 (0 = off; default 1); "
                        "the same training-free steering as the Emotion Conditioning node")
    parser.add_argument("--prompt", required=True, help="text prompt")
    parser.add_argument("--negative-prompt", default="", help="negative prompt (default: empty)")
    parser.add_argument("--visual-prompt", action="extend", nargs="+", default=[], type=VisualPromptArg.parse,
                        metavar="IMG[:WEIGHT]", help="visual prompt image(s), each with an optional weight 0..2 "
                        "(default 1) that multiplies --visual-weight")
    parser.add_argument("--adapter", metavar="FILE", help="IP-Adapter-layout adapter file (with --visual-prompt)")
    parser.add_argument("--image-encoder", metavar="DIR",
                        help="CLIPVisionModelWithProjection folder the adapter was trained with (with --visual-prompt)")
    parser.add_argument("--negative-visual-prompt", action="extend", nargs="+", default=[], type=Path, metavar="IMG",
                        help="image(s) of another emotion to guide away from under the same text (three-branch "
                        "negative visual guidance: eps_u + cfg*(eps_p - eps_u) + s_v*(eps_p - eps_nv)); needs "
                        "--visual-prompt")
    parser.add_argument("--visual-guidance", type=finite_float, default=2.0,
                        help="visual guidance scale s_v 0..30 with --negative-visual-prompt (default 2)")
    parser.add_argument("--visual-guidance-schedule", choices=tuple(GUIDANCE_SCHEDULES), default="constant",
                        help="s_v over the steps (default constant)")
    parser.add_argument("--visual-weight", type=finite_float, default=1.0,
                        help="visual prompt strength 0..2 (default 1)")
    parser.add_argument("--visual-schedule", default="uniform",
                        help="strength across the UNet: uniform, style, composition, 'down,middle,up' or one value "
                        "per cross-attention layer (default uniform)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the first image (default 0)")
    parser.add_argument("--steps", type=positive_int, default=30, help="sampling steps (default 30)")
    parser.add_argument("--cfg", type=non_negative_float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--width", type=int, help=f"image width, a multiple of {SIZE_MULTIPLE} "
                        "(default: the init image's, else the model's native size)")
    parser.add_argument("--height", type=int, help=f"image height, a multiple of {SIZE_MULTIPLE}")
    parser.add_argument("--batch", type=positive_int, default=1, help="images to generate (default 1)")
    parser.add_argument("--init-image", metavar="IMG", help="start from this image (img2img/SDEdit)")
    parser.add_argument("--denoise", type=finite_float,
                        help=f"with --init-image: how much is re-noised, 0..1 (default {DEFAULT_IMG2IMG_DENOISE}); "
                        "int(steps * denoise) steps run")
    from ..pipeline.schedulers import SCHEDULER_NAMES

    parser.add_argument("--scheduler", choices=SCHEDULER_NAMES, default="ddim",
                        help="sampler; 'model' keeps the model folder's own (default ddim)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; float16 on cuda)")
    parser.add_argument("--out", required=True, metavar="PATH_OR_DIR",
                        help="a .png file (batch > 1: STEM_SEED.png next to it) or a folder (EMOTION_SEED.png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    loop = parser.add_argument_group(
        "critic loop", "--critic-loop: generate, judge with --critic, refine the accepted candidate, keep the best "
        "(one image, named with --seed in a folder --out); passes at denoise d run int(steps*d) steps")
    loop.add_argument("--critic-loop", action="store_true",
                      help="run the Emotion Critic Loop (Iterative Emotion Inference) instead of one sampling call")
    add_loop_arguments(loop, critic_required=False)
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def _check_inputs(args: argparse.Namespace) -> None:
    from ..direction import make_direction
    from ..taxonomy import parse_emotion
    from ..visual_prompt.schedule import check_weight

    args.emotion = parse_emotion(args.emotion)
    make_direction(args.emotion, args.strength)  # a clear error for a strength outside [0, 2]
    if not args.prompt.strip():
        raise InvalidInputError("--prompt is empty")
    check_side("--width", args.width)
    check_side("--height", args.height)
    if not Path(args.model).exists():
        raise InvalidInputError(f"--model not found: {args.model}")
    if args.critic_loop:
        _check_loop_inputs(args)
    elif loop_options_given(args):
        raise InvalidInputError(f"{loop_options_given(args)[0]} is only used with --critic-loop")
    if args.init_image is None:
        if args.denoise is not None:
            raise InvalidInputError("--denoise needs --init-image")
        args.denoise = None if args.critic_loop else 1.0
    else:
        if not Path(args.init_image).is_file():
            raise InvalidInputError(f"--init-image not found: {args.init_image}")
        args.denoise = DEFAULT_IMG2IMG_DENOISE if args.denoise is None and not args.critic_loop else args.denoise
        if args.denoise is not None and not 0.0 <= args.denoise <= 1.0:
            raise InvalidInputError(f"--denoise must be between 0 and 1, got {args.denoise}")
    if args.visual_prompt:
        if args.adapter is None or args.image_encoder is None:
            raise InvalidInputError("--visual-prompt needs --adapter FILE and --image-encoder DIR")
        if not Path(args.adapter).is_file():
            raise InvalidInputError(f"--adapter not found: {args.adapter}")
        if not Path(args.image_encoder).is_dir():
            raise InvalidInputError(f"--image-encoder folder not found: {args.image_encoder}")
        check_weight(args.visual_weight, "--visual-weight")
        for item in args.visual_prompt:
            if not item.path.is_file():
                raise InvalidInputError(f"visual prompt image not found: {item.path}")
            check_weight(item.weight, f"weight of {item.path.name}")
            check_weight(item.weight * args.visual_weight, f"{item.path.name} weight x --visual-weight")
        for path in args.negative_visual_prompt:
            if not path.is_file():
                raise InvalidInputError(f"negative visual prompt image not found: {path}")
        if args.negative_visual_prompt:
            from ..guidance import check_visual_scale

            check_visual_scale(args.visual_guidance)
    elif args.adapter is not None or args.image_encoder is not None:
        raise InvalidInputError("--adapter/--image-encoder are only used with --visual-prompt IMG")
    elif args.negative_visual_prompt:
        raise InvalidInputError("--negative-visual-prompt needs --visual-prompt IMG (and --adapter, --image-encoder)")


def _check_loop_inputs(args: argparse.Namespace) -> None:
    if args.critic is None:
        raise InvalidInputError("--critic-loop needs --critic FILE (the emotion critic that judges each pass)")
    if not Path(args.critic).is_file():
        raise InvalidInputError(f"--critic not found: {args.critic}")
    if args.batch != 1:
        raise InvalidInputError("--critic-loop writes one image: use --candidates N (per pass), not --batch")
    if args.denoise is not None:
        raise InvalidInputError("--critic-loop draws each pass's denoise from --denoise-min..--denoise-max; "
                                "drop --denoise")
    args.loop_settings = loop_settings(args)


def output_paths(out: Path, emotion: str, seeds: list[int]) -> list[Path]:
    """``--out`` as a .png file (one image; a batch gets STEM_SEED.png) or a folder (EMOTION_SEED.png)."""
    if out.suffix.lower() == ".png" and not out.is_dir():
        if len(seeds) == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{seed}.png") for seed in seeds]
    if out.suffix and not out.is_dir():
        raise InvalidInputError(f"--out must be a .png file or a folder, got {out.name}")
    return [out / f"{emotion}_{seed}.png" for seed in seeds]


def run(args: argparse.Namespace, models: GenerationModels | None = None) -> Iterator[dict]:
    """The command; ``models`` from ``load_models`` lets a caller (``eval generate``) run it many
    times on one loaded pipeline."""
    _check_inputs(args)
    init_image = None
    if args.init_image:
        from ..pipeline.sizes import load_init_image

        init_image = load_init_image(args.init_image, args.width, args.height)
        args.height, args.width = init_image.shape[1:3]
    seeds = [args.seed + k for k in range(args.batch)]
    paths = output_paths(Path(args.out), args.emotion, seeds)
    refuse_existing(paths + ([Path(args.report)] if args.report else []), args.overwrite)

    from ..pipeline.branches import prompt_branches
    from ..pipeline.sizes import native_side

    pipe, critic, visual = models or load_models(args)
    args.scheduler_class = pipe.scheduler.__class__.__name__
    args.width, args.height = args.width or native_side(pipe), args.height or native_side(pipe)
    patches = None
    if visual is not None:
        from ..pipeline.visual import visual_prompt_patches

        adapter, prompts = visual
        patches = visual_prompt_patches(pipe.unet, adapter, prompts, args.visual_schedule)
    branches = prompt_branches(pipe, args.prompt, args.negative_prompt, args.cfg,
                               args.visual_guidance if args.negative_visual_prompt else None,
                               args.visual_guidance_schedule)
    if critic is not None:
        return [_critic_loop(pipe, critic, args, branches, init_image, patches, paths[0])]
    return _generate(pipe, args, branches, init_image, patches, paths)


class GenerationModels(NamedTuple):
    pipe: object
    critic: object | None
    visual: tuple | None  # (adapter, visual prompts) with --visual-prompt


def load_models(args: argparse.Namespace) -> GenerationModels:
    """The checked arguments' critic (--critic-loop), visual prompts and pipeline with its scheduler."""
    import torch

    from ..pipeline import load_pipeline, use_scheduler

    dtype = torch.float16 if str(args.device).startswith("cuda") else torch.float32
    # the critic, adapter and image encoder are smaller than the model: their errors come first
    critic = None
    if args.critic_loop:
        from ..critics import load_critic

        critic = load_critic(args.critic, device=args.device)
    visual = None
    if args.visual_prompt:
        from ..pipeline.visual_files import load_visual_prompts

        visual = load_visual_prompts(args.adapter, args.image_encoder,
                                     [(item.path, item.weight * args.visual_weight) for item in args.visual_prompt],
                                     args.negative_visual_prompt, device=args.device)
    pipe = load_pipeline(args.model, device=args.device, dtype=dtype)
    use_scheduler(pipe, args.scheduler)
    return GenerationModels(pipe, critic, visual)


def _metadata(args: argparse.Namespace, seed: int) -> dict:
    meta = {
        "emotion": args.emotion, "strength": args.strength, "prompt": args.prompt, "negative_prompt": args.negative_prompt, "seed": seed,
        "steps": args.steps, "cfg": args.cfg, "width": args.width, "height": args.height,
        "scheduler": args.scheduler_class, "model": Path(args.model).name,
    }
    if args.init_image:
        meta["init_image"] = Path(args.init_image).name
        if args.denoise is not None:  # with --critic-loop each pass draws its own (see "critic_loop")
            meta["denoise"] = args.denoise
    if args.visual_prompt:
        meta.update(visual_prompts=[{"image": item.path.name, "weight": item.weight} for item in args.visual_prompt],
                    visual_weight=args.visual_weight, visual_schedule=args.visual_schedule,
                    adapter=Path(args.adapter).name, image_encoder=Path(args.image_encoder).name)
    if args.negative_visual_prompt:
        meta.update(negative_visual_prompts=[p.name for p in args.negative_visual_prompt],
                    visual_guidance=args.visual_guidance, visual_guidance_schedule=args.visual_guidance_schedule)
    meta["generator"] = "emotion-director generate"
    return meta


def _write_png(image, path: Path, meta: dict, overwrite: bool) -> None:
    with existing_refused(path):
        write_metadata_png(image, path, meta, replace=overwrite)
    log.info("wrote %s", path)


def _generate(pipe, args: argparse.Namespace, branches, init_image, patches, paths: list[Path]) -> Iterator[dict]:
    from ..direction import make_direction
    from ..pipeline import sample
    from ..pipeline.prompts import steer_prompt

    steered = steer_prompt(pipe, branches.positive, make_direction(args.emotion, args.strength))
    result = sample(pipe, branches.embeddings(steered), branches.guidance, seed=args.seed, steps=args.steps,
                    width=args.width, height=args.height, batch=args.batch, init_image=init_image,
                    denoise=args.denoise, patches=patches, **branches.sample_options())
    for image, seed, path in zip(result.images, result.seeds, paths):
        meta = _metadata(args, seed)
        _write_png(image, path, meta, args.overwrite)
        yield {"image": str(path), **meta}


def _critic_loop(pipe, critic, args: argparse.Namespace, branches, init_image, patches, path: Path) -> dict:
    """The loop instead of one ``sample`` call; the best candidate is written with the run's settings
    plus the loop's outcome (``critic_loop``), then the report."""
    from ..direction import make_direction
    from ..pipeline.critic_loop import run_pipeline_loop

    result = run_pipeline_loop(pipe, critic, make_direction(args.emotion, args.strength), args.loop_settings, branches,
                               steps=args.steps, width=args.width, height=args.height, source=init_image,
                               patches=patches)
    meta = {**_metadata(args, args.seed), "critic_loop": loop_summary(result.report, args.critic)}
    _write_png(result.best_image[0], path, meta, args.overwrite)
    if args.report:
        with existing_refused(args.report):
            write_new_json(args.report, result.report, replace=args.overwrite)
    return {"image": str(path), **meta, "report": args.report}
