"""``emotion-director convert``: rewrite a third-party checkpoint as safetensors
plus this project's metadata, so it never needs pickle again; EmoEditor's
``model_ip2p.pt`` and diffusers SD UNets become the files ComfyUI's UNETLoader and
VAELoader read (``emotion_core.conversion``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import refuse_existing

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "convert", help="rewrite a .pt/.pth/.bin/.ckpt checkpoint as .safetensors with metadata",
        description="Load IN safely (weights only), write OUT as safetensors with metadata. "
                    "Checkpoints that need full pickle are refused unless --trust-pickle is given. "
                    "The layout is recognised from the keys: EmoEditor's model_ip2p.pt and diffusers SD UNets "
                    "are written as an original-layout UNet for ComfyUI's models/diffusion_models/ (--vae-out "
                    "also writes the VAE, for models/vae/); model_emoenc.pt as the emotion encoder; critics as "
                    "they are. Tensors keep their dtype unless --dtype is given.")
    parser.add_argument("input", metavar="IN",
                        help="checkpoint to read, or a diffusers UNet folder or pipeline folder (with unet/, vae/)")
    parser.add_argument("output", metavar="OUT", help=".safetensors file to write")
    parser.add_argument("--vae-out", metavar="FILE", type=Path,
                        help="also write IN's VAE (model_ip2p.pt's auto_encoder, a pipeline folder's vae/) as an "
                             "original-layout .safetensors file, for ComfyUI's VAELoader")
    parser.add_argument("--dtype", metavar="fp16|bf16|fp32",
                        help="cast floating-point tensors (default: keep them as stored, e.g. fp16 stays fp16)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="unpickle IN fully if needed; this runs code from the file, so only for files you trust")
    parser.add_argument("--kind", help="model kind to record; the tensors are then copied unchanged "
                                       "(default: the layout is detected from the tensors)")
    parser.add_argument("--class-order", help="the head's class order, comma-separated (e.g. EmoEditor's alphabetical order)")
    parser.add_argument("--backbone-file", help="for a probe head: the open_clip file it reads, in the same folder as OUT")
    parser.add_argument("--open-clip-model", help="open_clip registry name of the model, e.g. ViT-L-14")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def _metadata(args: argparse.Namespace, source: Path) -> dict:
    """IN's own metadata (header or sidecar), overridden by the flags given."""
    from ..taxonomy import parse_class_order
    from ..weights import read_metadata, resolve_inside

    metadata = read_metadata(source)
    if args.class_order is not None:
        metadata["class_order"] = list(parse_class_order(args.class_order.split(",")))
    if args.backbone_file is not None:
        if not resolve_inside(Path(args.output).parent, args.backbone_file).is_file():
            log.warning("backbone file %s is not next to %s yet; the critic loads once it is", args.backbone_file, args.output)
        metadata["backbone_file"] = args.backbone_file
    if args.open_clip_model is not None:
        metadata["open_clip_model"] = args.open_clip_model
    metadata["converted_from"] = source.name
    return metadata


def run(args: argparse.Namespace) -> dict:
    from ..conversion import convert_weights
    from ..weights import SAFETENSORS_SUFFIXES

    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        raise InvalidInputError(f"input not found: {source}")
    outputs = [target] if args.vae_out is None else [target, args.vae_out]
    for flag, path in zip(("OUT", "--vae-out"), outputs):
        if path.suffix not in SAFETENSORS_SUFFIXES:
            raise InvalidInputError(f"{flag} must be a .safetensors file, got {path.name}")
    if args.vae_out is not None and args.vae_out.resolve() == target.resolve():
        raise InvalidInputError("--vae-out must differ from OUT")
    refuse_existing(outputs, args.overwrite)
    metadata = _metadata(args, source)
    return convert_weights(source, target, metadata, vae_out=args.vae_out, kind=args.kind or metadata.get("kind"),
                           trust_pickle=args.trust_pickle, dtype=args.dtype)
