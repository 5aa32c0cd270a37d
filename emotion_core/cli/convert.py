"""``emotion-director convert``: rewrite a third-party checkpoint as safetensors
plus this project's metadata, so it never needs pickle again."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InvalidInputError, ModelFormatError
from . import add_json_flag
from .arguments import refuse_existing

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "convert", help="rewrite a .pt/.pth/.bin/.ckpt checkpoint as .safetensors with metadata",
        description="Load IN safely (weights only), write OUT as safetensors with metadata. "
                    "Checkpoints that need full pickle are refused unless --trust-pickle is given.")
    parser.add_argument("input", metavar="IN", help="checkpoint to read")
    parser.add_argument("output", metavar="OUT", help=".safetensors file to write")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="unpickle IN fully if needed; this runs code from the file, so only for files you trust")
    parser.add_argument("--kind", help="model kind to record (default: detected from the tensors)")
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
    from ..weights import SAFETENSORS_SUFFIXES, load_state_dict, save_safetensors

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise InvalidInputError(f"input not found: {source}")
    if target.suffix not in SAFETENSORS_SUFFIXES:
        raise InvalidInputError(f"OUT must be a .safetensors file, got {target.name}")
    refuse_existing([target], args.overwrite)
    metadata = _metadata(args, source)
    tensors = load_state_dict(source, trust_pickle=args.trust_pickle)
    kind = args.kind or metadata.get("kind") or _detect(tensors, source)
    metadata["kind"] = kind
    save_safetensors(tensors, target, metadata)
    log.info("wrote %d tensors (%s) to %s", len(tensors), kind, target)
    return {"input": str(source), "output": str(target), "kind": kind, "tensors": len(tensors)}


def _detect(tensors, source: Path) -> str:
    from ..critics import detect_kind

    try:
        return detect_kind(tensors, source)
    except ModelFormatError as exc:
        raise InvalidInputError(f"{exc}; pass --kind to convert it anyway") from exc
