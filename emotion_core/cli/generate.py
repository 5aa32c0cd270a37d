"""``emotion-director generate``: text-to-image (or img2img) with an SD1.5-family model
through the diffusers pipeline, optionally guided by visual prompts (MC-Diffusion).

Every input is checked before a model is loaded; output files are never
overwritten without ``--overwrite`` and appear only complete (written beside
the target, then linked into place). Each PNG carries the run's settings as
JSON in the ``emotion_director`` text chunk (file names only, never paths or
secrets); ``--json`` prints the same object plus the image path, one per image.

``--critic-loop`` runs the Emotion Critic Loop (Iterative Emotion Inference, shared with
``edit``: ``loop_common``) instead of one sampling call: the first pass is plain
text-to-image (or an SDEdit of ``--init-image``, judged with SSIM against it), an accepted
candidate is refined by SDEdit passes along the re-estimated direction, and the best
candidate is written with the loop's outcome in its metadata.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InvalidInputError
from ..guidance import SCHEDULES as GUIDANCE_SCHEDULES
from ..report import PNG_METADATA_KEY, write_new_png
from . import add_json_flag
from .arguments import positive_int, refuse_existing
from .loop_common import (
    add_loop_arguments,
    loop_options_given,
    loop_settings,
    loop_summary,
    run_pipeline_loop,
    write_report,
)

log = logging.getLogger(__name__)

MAX_SIDE = 4096
SIZE_MULTIPLE = 8
DEFAULT_IMG2IMG_DENOISE = 0.75


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"seed must be between 0 and 2^63-1, got {value}")
    return value


@dataclass(frozen=True)
class VisualPromptArg:
    path: Path
    weight: float

    @classmethod
    def parse(cls, text: str) -> "VisualPromptArg":
        """``IMG`` or ``IMG:WEIGHT`` (a colon followed by something that is not a number belongs to the path)."""
        path, sep, weight = text.rpartition(":")
        if sep:
            try:
                return cls(Path(path), float(weight))
            except ValueError:
                pass
        return cls(Path(text), 1.0)


def register(commands) -> None:
    parser = commands.add_parser(
        "generate", help="generate images for an emotion with an SD1.5-family model (diffusers)",
        description="Text-to-image or img2img through the diffusers pipeline, with optional visual prompts "
        "(IP-Adapter-layout adapter + images) guiding the mood. Image k of a batch uses seed SEED+k.")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="diffusers pipeline folder, or an original-layout SD1.5 .safetensors checkpoint")
    parser.add_argument("--emotion", required=True, help="target emotion (one of the eight Mikels emotions)")
    parser.add_argument("--strength", type=_finite_float, default=1.0,
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
    parser.add_argument("--visual-guidance", type=_finite_float, default=2.0,
                        help="visual guidance scale s_v 0..30 with --negative-visual-prompt (default 2)")
    parser.add_argument("--visual-guidance-schedule", choices=tuple(GUIDANCE_SCHEDULES), default="constant",
                        help="s_v over the steps (default constant)")
    parser.add_argument("--visual-weight", type=_finite_float, default=1.0,
                        help="visual prompt strength 0..2 (default 1)")
    parser.add_argument("--visual-schedule", default="uniform",
                        help="strength across the UNet: uniform, style, composition, 'down,middle,up' or one value "
                        "per cross-attention layer (default uniform)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the first image (default 0)")
    parser.add_argument("--steps", type=positive_int, default=30, help="sampling steps (default 30)")
    parser.add_argument("--cfg", type=_finite_float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--width", type=int, help=f"image width, a multiple of {SIZE_MULTIPLE} "
                        "(default: the init image's, else the model's native size)")
    parser.add_argument("--height", type=int, help=f"image height, a multiple of {SIZE_MULTIPLE}")
    parser.add_argument("--batch", type=positive_int, default=1, help="images to generate (default 1)")
    parser.add_argument("--init-image", metavar="IMG", help="start from this image (img2img/SDEdit)")
    parser.add_argument("--denoise", type=_finite_float,
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


def _check_size(name: str, value: int | None) -> None:
    if value is not None and not (SIZE_MULTIPLE <= value <= MAX_SIDE and value % SIZE_MULTIPLE == 0):
        raise InvalidInputError(f"--{name} must be a multiple of {SIZE_MULTIPLE} between {SIZE_MULTIPLE} and "
                                f"{MAX_SIDE}, got {value}")


def _check_inputs(args: argparse.Namespace) -> None:
    from ..direction import make_direction
    from ..taxonomy import parse_emotion
    from ..visual_prompt.schedule import check_weight

    args.emotion = parse_emotion(args.emotion)
    make_direction(args.emotion, args.strength)  # a clear error for a strength outside [0, 2]
    if not args.prompt.strip():
        raise InvalidInputError("--prompt is empty")
    _check_size("width", args.width)
    _check_size("height", args.height)
    if args.cfg < 0:
        raise InvalidInputError(f"--cfg must be >= 0, got {args.cfg}")
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


def write_png(image, path: Path, metadata: dict, overwrite: bool) -> None:
    """The run's metadata in the ``emotion_director`` chunk; written whole, and an existing
    file is kept unless ``overwrite`` (``emotion_core.report.write_new_png``)."""
    from ..images import to_pil

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_new_png(to_pil(image), path, {PNG_METADATA_KEY: json.dumps(metadata, sort_keys=True)},
                      compress_level=6, replace=overwrite)
    except FileExistsError:
        raise InvalidInputError(f"{path} exists; pass --overwrite to replace it") from None


def _load_init_image(args: argparse.Namespace):
    import torch.nn.functional as F

    from ..images import load_image

    image = load_image(args.init_image)
    height, width = image.shape[1:3]
    if args.width is None and args.height is None:
        if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
            raise InvalidInputError(f"--init-image is {width}x{height}; sizes must be multiples of {SIZE_MULTIPLE} "
                                    "(pass --width/--height to resize it)")
        return image
    size = (args.height or height, args.width or width)
    for name, value in (("height", size[0]), ("width", size[1])):
        _check_size(name, value)
    pixels = F.interpolate(image.permute(0, 3, 1, 2), size=size, mode="bicubic", align_corners=False, antialias=True)
    return pixels.clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous()


def run(args: argparse.Namespace) -> Iterator[dict]:
    _check_inputs(args)
    init_image = _load_init_image(args) if args.init_image else None
    if init_image is not None:
        args.height, args.width = init_image.shape[1:3]
    seeds = [args.seed + k for k in range(args.batch)]
    paths = output_paths(Path(args.out), args.emotion, seeds)
    refuse_existing(paths + ([Path(args.report)] if args.report else []), args.overwrite)

    import torch

    from ..pipeline import load_pipeline, use_scheduler

    dtype = torch.float16 if str(args.device).startswith("cuda") else torch.float32
    # the critic, adapter and image encoder are smaller than the model: their errors come first
    critic = None
    if args.critic_loop:
        from ..critics import load_critic

        critic = load_critic(args.critic, device=args.device)
    visual = _visual_prompts(args) if args.visual_prompt else None
    pipe = load_pipeline(args.model, device=args.device, dtype=dtype)
    args.scheduler_class = use_scheduler(pipe, args.scheduler)
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor
    args.width, args.height = args.width or native, args.height or native
    patches = None
    if visual is not None:
        from ..pipeline.visual import visual_prompt_patches

        adapter, prompts = visual
        patches = visual_prompt_patches(pipe.unet, adapter, prompts, args.visual_schedule)
    if critic is not None:
        return [_critic_loop(pipe, critic, args, init_image, patches, paths[0])]
    return _generate(pipe, args, init_image, patches, paths)


def _visual_prompts(args: argparse.Namespace):
    """(adapter, [(VisualPrompt, weight), ...]) from the image files; the encoder is freed after."""
    from ..images import load_image
    from ..pipeline.visual import load_image_encoder, visual_prompts_from_images
    from ..visual_prompt import load_adapter

    adapter = load_adapter(args.adapter)
    encoder = load_image_encoder(args.image_encoder, device=args.device)
    images = [(load_image(item.path), item.weight * args.visual_weight) for item in args.visual_prompt]
    prompts = visual_prompts_from_images(adapter, encoder, images)
    if args.negative_visual_prompt:  # every visual prompt's negative_visual role: the third branch's tokens
        from ..guidance import with_negative_visual

        negative = visual_prompts_from_images(adapter, encoder, [(load_image(p), 1.0)
                                                                 for p in args.negative_visual_prompt])[0][0]
        prompts = [(with_negative_visual(prompt, negative), weight) for prompt, weight in prompts]
    return adapter, prompts


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


def steer_prompt(pipe, tokens, direction):
    """The prompt's hidden states moved along ``direction`` (an ``EmotionDirection``) in the
    pipeline's own text encoder space (``emotion_core.conditioning``, shared with the ComfyUI node)."""
    from ..conditioning import Encoded, apply_delta, emotion_delta
    from ..pipeline import encode_prompts

    delta = emotion_delta(lambda text: Encoded(encode_prompts(pipe, [text])[0]), direction)
    return tokens if delta is None else apply_delta(tokens, None, delta)[0]


def _sampling(pipe, args: argparse.Namespace):
    """``(positive, branches, guidance, options)``: the prompt's embeddings, ``branches(steered)`` -> the
    branch list for ``sample``, the guidance combining them and the other ``sample`` options."""
    from ..pipeline import cfg_guidance, encode_prompts

    positive, negative = encode_prompts(pipe, [args.prompt, args.negative_prompt])
    if not args.negative_visual_prompt:
        return positive, lambda steered: [steered, negative], cfg_guidance(args.cfg), {}
    # third branch: the same (steered) text, the negative visual prompt's tokens
    from ..guidance import (
        NEGATIVE_VISUAL_INDEX,
        negative_visual_guidance,
        negative_visual_roles,
    )

    guidance = negative_visual_guidance(args.cfg, args.visual_guidance, args.visual_guidance_schedule)
    options = {"condition_indices": [0, 1, NEGATIVE_VISUAL_INDEX], "patch_options": negative_visual_roles()}
    return positive, lambda steered: [steered, negative, steered], guidance, options


def _generate(pipe, args: argparse.Namespace, init_image, patches, paths: list[Path]) -> Iterator[dict]:
    from ..direction import make_direction
    from ..pipeline import sample

    positive, branches, guidance, options = _sampling(pipe, args)
    steered = steer_prompt(pipe, positive, make_direction(args.emotion, args.strength))
    result = sample(pipe, branches(steered), guidance, seed=args.seed, steps=args.steps, width=args.width,
                    height=args.height, batch=args.batch, init_image=init_image, denoise=args.denoise,
                    patches=patches, **options)
    for image, seed, path in zip(result.images, result.seeds, paths):
        meta = _metadata(args, seed)
        write_png(image, path, meta, args.overwrite)
        log.info("wrote %s", path)
        yield {"image": str(path), **meta}


def _critic_loop(pipe, critic, args: argparse.Namespace, init_image, patches, path: Path) -> dict:
    """The loop instead of one ``sample`` call; the best candidate is written with the run's settings
    plus the loop's outcome (``critic_loop``), then the report."""
    from ..direction import make_direction

    positive, branches, guidance, options = _sampling(pipe, args)
    result = run_pipeline_loop(pipe, critic, make_direction(args.emotion, args.strength), args.loop_settings,
                               positive=positive, branches=branches, guidance=guidance, steps=args.steps,
                               width=args.width, height=args.height, source=init_image,
                               sample_options={"patches": patches, **options})
    meta = {**_metadata(args, args.seed), "critic_loop": loop_summary(result, args.critic)}
    write_png(result.best_image[0], path, meta, args.overwrite)
    log.info("wrote %s", path)
    if args.report:
        write_report(Path(args.report), result.report, args.overwrite)
    return {"image": str(path), **meta, "report": args.report}
