"""``edit --emoeditor``: EmoEditor's procedure with its released weights (or their converted
files). Each pass is EmoEditor's InstructPix2Pix edit (``pipeline.instruct_pix2pix``) with the
emotion encoder's tokens for the pass's direction; the loop is its test.py's, decision for
decision (``critic_loop`` preset ``EmoEditor``): SSIM in (0.5, 0.8) OR the predictor's top-1
is the target; stop at target probability 0.6 or once ``--max-iterations`` (num_loop, 30)
images are kept; the direction of every pass after the first from the first pass's result;
its final pick, the source when nothing was accepted. Added: ``--max-passes``, a hard cap
on all passes (test.py has none). Options, not defaults: ``--reestimate-direction``,
``--resolution native``, ``--image-guidance``."""

from __future__ import annotations

import argparse

from ..errors import InvalidInputError
from .arguments import positive_float, positive_int

RESOLUTIONS = ("224", "native")
INSTRUCTION_SCALE = 7.5  # edit's --cfg default, diffusers' InstructPix2Pix guidance_scale default
# dest -> the value it has when not given; these options need --emoeditor
EMOEDITOR_ONLY = {"unet": None, "vae": None, "encoder": None, "trust_pickle": False, "resolution": "224",
                  "image_guidance": None, "reestimate_direction": False, "max_passes": None}
# loop options test.py fixes: not with --emoeditor
FIXED_BY_EMOEDITOR = ("--denoise-min", "--denoise-max", "--ssim-min", "--ssim-max", "--confidence", "--rule",
                      "--candidates")


def add_emoeditor_arguments(parser: argparse.ArgumentParser) -> None:
    from ..critic_loop import EMOEDITOR_PASS_CAP

    group = parser.add_argument_group("EmoEditor", "EmoEditor's InstructPix2Pix edit and test.py's loop")
    group.add_argument("--emoeditor", action="store_true", help="run EmoEditor's procedure (needs --unet, --vae, "
                       "--encoder; --critic is its emo_predictor)")
    group.add_argument("--unet", metavar="FILE", help="InstructPix2Pix UNet: EmoEditor's model_ip2p.pt, or the "
                       "UNet `convert` wrote from it (LDM or diffusers layout)")
    group.add_argument("--vae", metavar="FILE", help="its VAE: model_ip2p.pt again, or the converted VAE")
    group.add_argument("--encoder", metavar="FILE", help="EmoEditor's emotion encoder (model_emoenc.pt or converted)")
    group.add_argument("--trust-pickle", action="store_true",
                       help="let --unet/--vae unpickle fully if weights-only loading refuses the file")
    group.add_argument("--resolution", choices=RESOLUTIONS, default=EMOEDITOR_ONLY["resolution"],
                       help="224: resize the source to 224x224 as test.py does (default); native: edit at the "
                       "source's size, cropped to the VAE's grid")
    group.add_argument("--image-guidance", type=positive_float, metavar="S",
                       help="diffusers' InstructPix2Pix guidance with image scale S and instruction scale --cfg "
                       "(EmoEditor runs without guidance)")
    group.add_argument("--reestimate-direction", action="store_true",
                       help="re-estimate the direction from the image each pass edits (test.py keeps the first "
                       "pass's estimate)")
    group.add_argument("--max-passes", type=positive_int, metavar="N",
                       help=f"hard cap on all passes, accepted or not (default {EMOEDITOR_PASS_CAP}; test.py has "
                       "none and never ends when no pass is accepted)")


def check_emoeditor_options(args: argparse.Namespace) -> None:
    """The EmoEditor options are given with ``--emoeditor`` only, and then all it needs."""
    from .loop_common import loop_options_given

    if not args.emoeditor:
        given = [dest for dest, unset in EMOEDITOR_ONLY.items() if getattr(args, dest) != unset]
        if given:
            raise InvalidInputError(f"--{given[0].replace('_', '-')} needs --emoeditor")
        return
    missing = [f"--{dest}" for dest in ("unet", "vae", "encoder") if getattr(args, dest) is None]
    if missing:
        raise InvalidInputError(f"--emoeditor needs {', '.join(missing)} (EmoEditor's model_ip2p.pt can be both "
                                "--unet and --vae)")
    fixed = [flag for flag in loop_options_given(args) if flag in FIXED_BY_EMOEDITOR]
    if fixed:
        raise InvalidInputError(f"{fixed[0]} does not apply with --emoeditor: test.py's loop fixes it")
    if args.image_guidance is None and args.cfg != INSTRUCTION_SCALE:
        raise InvalidInputError("--cfg applies with --emoeditor only together with --image-guidance")


def emoeditor_settings_of(args: argparse.Namespace):
    """The EmoEditor preset's loop settings with this run's seed, num_loop, pass cap and direction."""
    from ..critic_loop import EMOEDITOR_NUM_LOOP, emoeditor_settings

    return emoeditor_settings(args.seed, args.max_passes,
                              keep_limit=EMOEDITOR_NUM_LOOP if args.max_iterations is None else args.max_iterations,
                              direction_from="edited" if args.reestimate_direction else "first_edit")


def run_emoeditor(args: argparse.Namespace):
    """``(LoopResult, {"procedure": "emoeditor", "resolution": ...})``."""
    from ..critic_loop import EMOEDITOR_PRESET
    from ..critic_loop.settings import DENOISE_QUANTUM
    from ..direction import make_direction
    from ..images import crop_to_multiple, load_image, pil_resize

    settings = emoeditor_settings_of(args)
    lowest = round(settings.denoise_low * DENOISE_QUANTUM)
    if args.steps > lowest:
        raise InvalidInputError(f"--steps must be at most {lowest} with --emoeditor: a pass at noise level T runs "
                                "its steps over T of the 1000 training timesteps")
    target = make_direction(args.target, args.strength)
    source = load_image(args.image)

    from ..critics import load_critic
    from ..emotion_encoder import load_emotion_encoder
    from ..pipeline.critic_loop import run_instruct_pix2pix_loop
    from ..pipeline.instruct_pix2pix_files import load_instruct_pix2pix

    model = load_instruct_pix2pix(args.unet, args.vae, trust_pickle=args.trust_pickle, device=args.device)
    if args.resolution == "native":
        source = crop_to_multiple(source, model.scale_factor, args.image)
    else:
        size = EMOEDITOR_PRESET.source_size
        source = pil_resize(source, size, size)
    encoder = load_emotion_encoder(args.encoder, device=args.device)
    critic = load_critic(args.critic, device=args.device)
    guidance = None if args.image_guidance is None else (args.cfg, args.image_guidance)
    result = run_instruct_pix2pix_loop(model, encoder, critic, target, settings, source, steps=args.steps,
                                       image_guidance=guidance)
    return result, {"procedure": "emoeditor", "resolution": args.resolution}
