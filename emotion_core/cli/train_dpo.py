"""``emotion-director train-dpo``: negative-visual Diffusion-DPO fine-tuning of a visual prompt
adapter on preference pairs (the Save Emotion Preference Pair node's folders, EmoEditor's
EmoPair JSON, or an EmoSet folder). Runs on HuggingFace accelerate: the same command on a
CPU, one GPU, or ``accelerate launch -m emotion_core train-dpo ...`` on many.

Writes an IP-Adapter-layout .safetensors that the Visual Prompt Injector (and
``generate --visual-prompt``) loads.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import non_negative_int, positive_float, positive_int, safetensors_out

log = logging.getLogger(__name__)


def register(commands) -> None:
    parser = commands.add_parser(
        "train-dpo", help="negative-visual DPO fine-tuning of a visual prompt adapter",
        description="Diffusion-DPO on preference pairs: the preferred image under text + the target emotion's visual "
        "prompt against the rejected image under the same text + the negative visual prompt; only the adapter "
        "trains, the reference is the adapter as given. Corrupt or partial dataset rows are skipped with a count.")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="preference dataset folder (pairs.jsonl, EmoPair JSON, or one sub-folder per emotion)")
    parser.add_argument("--base", required=True, metavar="MODEL",
                        help="SD1.5-family diffusers folder (or original-layout .safetensors)")
    parser.add_argument("--adapter", required=True, metavar="FILE", help="IP-Adapter-layout adapter to start from")
    parser.add_argument("--out", required=True, metavar="FILE", help="trained adapter to write (.safetensors)")
    parser.add_argument("--image-encoder", metavar="DIR",
                        help="CLIP vision folder for visual prompts given as images (default: MODEL/image_encoder "
                        "when it exists)")
    parser.add_argument("--beta", type=positive_float, default=5000.0, help="DPO beta (default 5000)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="optimizer steps (default 1000)")
    parser.add_argument("--lr", type=positive_float, default=1e-5, help="AdamW learning rate (default 1e-5)")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="pairs per optimizer step and process (gradient accumulation; default 1)")
    parser.add_argument("--resolution", type=positive_int, default=512,
                        help="training image side in pixels, a multiple of 8 (default 512)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for pair order and noise")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="N",
                        help="write a checkpoint every N steps into OUT.checkpoints/ (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in OUT.checkpoints/ (same settings needed)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def run(args: argparse.Namespace) -> dict:
    out = safetensors_out(args.out, args.overwrite)
    if args.resolution % 8:
        raise InvalidInputError(f"--resolution must be a multiple of 8, got {args.resolution}")
    if not Path(args.adapter).is_file():
        raise InvalidInputError(f"--adapter file not found: {args.adapter}")
    encoder_dir = Path(args.image_encoder) if args.image_encoder else Path(args.base) / "image_encoder"
    if args.image_encoder and not encoder_dir.is_dir():
        raise InvalidInputError(f"--image-encoder folder not found: {encoder_dir}")

    from ..preference import read_dataset
    from ..training import TrainConfig, train_dpo
    from ..training.data import prepare_examples
    from ..visual_prompt import load_adapter
    from ..weights import save_safetensors

    started = time.perf_counter()
    dataset = read_dataset(args.data)
    adapter = load_adapter(args.adapter)
    examples, unusable = prepare_examples(dataset.pairs, adapter.layout.cross_dim)
    for pair_id, why in unusable:
        log.warning("skipped pair %s: %s", pair_id, why)
    skipped = len(dataset.skipped) + len(unusable)
    if not examples:
        raise InvalidInputError(f"{args.data}: no usable preference pairs ({skipped} skipped)")
    log.info("%d pairs (%s layout), %d skipped", len(examples), dataset.layout, skipped)

    from ..pipeline import load_pipeline

    pipe = load_pipeline(args.base)
    encoder = None
    if any(e.needs_encoder for e in examples) and encoder_dir.is_dir():
        from ..pipeline.visual import load_image_encoder

        encoder = load_image_encoder(encoder_dir)
    config = TrainConfig(steps=args.steps, beta=args.beta, lr=args.lr, batch_size=args.batch_size,
                         resolution=args.resolution, seed=args.seed, checkpoint_every=args.checkpoint_every,
                         checkpoint_dir=checkpoint_dir(out), resume=args.resume)
    result = train_dpo(pipe, adapter, examples, config, encoder)

    kv_dtype = adapter.ip_adapter["1"].to_k_ip.weight.dtype
    state = {k: (v.to(kv_dtype) if k.startswith("ip_adapter.") else v) for k, v in result.adapter.state_dict().items()}
    metadata = {"trained": "negative-visual diffusion-dpo", "base": Path(args.base).name,
                "adapter": Path(args.adapter).name, "beta": args.beta, "steps": args.steps, "lr": args.lr,
                "batch_size": args.batch_size, "seed": args.seed, "pairs": len(examples)}
    save_safetensors(state, out, metadata)
    load_adapter(out)  # what the injector will do: fail here, not later, if the layout is off
    tail = result.losses[-10:]
    margins = result.margins[-10:]
    return {"out": str(out), "layout": adapter.layout.describe(), "pairs": len(examples), "skipped": skipped,
            "dataset_layout": dataset.layout, "steps": args.steps, "resumed_from": result.start_step,
            "final_loss": round(sum(tail) / len(tail), 6) if tail else None,
            "final_margin": round(sum(margins) / len(margins), 6) if margins else None,
            "seconds": round(time.perf_counter() - started, 2)}
