"""``emotion-director train-dpo``: negative-visual Diffusion-DPO fine-tuning of a visual prompt
adapter and/or a UNet LoRA on preference pairs (the Save Emotion Preference Pair node's
folders, EmoEditor's EmoPair JSON, or EmoSet with a prompt bank). Runs on HuggingFace
accelerate: the same command on a CPU, one GPU, or
``accelerate launch -m emotion_core train-dpo ...`` on many.

Writes an IP-Adapter-layout .safetensors that the Visual Prompt Injector (and
``generate --visual-prompt``) loads, and/or a LoRA .safetensors for ComfyUI's LoraLoader.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

from ..errors import InvalidInputError
from . import add_json_flag
from .arguments import non_negative_int, positive_float, positive_int, safetensors_out
from .train_dpo_data import add_data_arguments, dry_run, load_examples

log = logging.getLogger(__name__)

TRAIN_HELP = ("what trains: adapter (the visual prompt adapter's image key/value layers, and its projection when "
              "visual prompts are images or bank features), unet-lora (a peft LoRA on the UNet's attention "
              "projections; --out is then the LoRA file), or both (default adapter)")


def register(commands) -> None:
    parser = commands.add_parser(
        "train-dpo", help="negative-visual DPO fine-tuning of a visual prompt adapter and/or a UNet LoRA",
        description="Diffusion-DPO on preference pairs: the preferred image under text + the target emotion's visual "
        "prompt against the rejected image under the same text + the negative visual prompt. The reference is the "
        "frozen base (the adapter as given, the UNet without LoRA). Corrupt or partial dataset rows are skipped with "
        "a count. Several GPUs: accelerate launch -m emotion_core train-dpo ...")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="preference dataset folder (pairs.jsonl, EmoPair JSON, EmoSet-118K, or one sub-folder "
                        "per emotion)")
    add_data_arguments(parser)
    parser.add_argument("--base", metavar="MODEL",
                        help="SD1.5-family diffusers folder (or original-layout .safetensors); needed unless --dry-run")
    parser.add_argument("--adapter", metavar="FILE",
                        help="IP-Adapter-layout adapter to start from (it injects the visual prompts whatever "
                        "trains); needed unless --dry-run")
    parser.add_argument("--out", metavar="FILE",
                        help="file to write (.safetensors): the trained adapter, or the LoRA with --train unet-lora; "
                        "needed unless --dry-run")
    parser.add_argument("--train", choices=("adapter", "unet-lora", "both"), default="adapter", help=TRAIN_HELP)
    parser.add_argument("--lora-rank", type=positive_int, default=4, help="UNet LoRA rank (default 4)")
    parser.add_argument("--lora-alpha", type=positive_float, default=None,
                        help="UNet LoRA alpha; the update is scaled by alpha/rank (default: the rank)")
    parser.add_argument("--lora-out", metavar="FILE",
                        help="LoRA file with --train both (default: OUT's name with _lora before .safetensors)")
    parser.add_argument("--image-encoder", metavar="DIR",
                        help="CLIP vision folder for visual prompts given as images (default: MODEL/image_encoder "
                        "when it exists)")
    parser.add_argument("--beta", type=positive_float, default=5000.0, help="DPO beta (default 5000)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="optimizer steps (default 1000)")
    parser.add_argument("--lr", type=positive_float, default=1e-5, help="AdamW learning rate (default 1e-5)")
    parser.add_argument("--adam-epsilon", type=positive_float, default=1e-8,
                        help="AdamW epsilon: gradients much smaller than it take smaller steps (default 1e-8)")
    parser.add_argument("--lr-warmup-steps", type=non_negative_int, default=0,
                        help="linear learning-rate warm-up over this many optimizer steps (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="pairs per process and micro-step; the global batch is batch size x --grad-accum x "
                        "processes (default 1)")
    parser.add_argument("--grad-accum", type=positive_int, default=1,
                        help="micro-steps accumulated per optimizer step (default 1)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"),
                        help="autocast precision (bf16 also on CPUs; fp16 on GPUs only; default: accelerate launch's "
                        "--mixed_precision or accelerate config, else no)")
    parser.add_argument("--resolution", type=positive_int, default=512,
                        help="training image side in pixels, a multiple of 8 (default 512)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for pair order and noise")
    parser.add_argument("--cache-latents", choices=("auto", "on", "off"), default="auto",
                        help="VAE-encode each image once into --latent-cache (auto: when the data set fits "
                        "--cache-budget-gb; default auto)")
    parser.add_argument("--latent-cache", metavar="DIR",
                        help="latent cache folder, keyed by image content, kept and reusable across runs (default: "
                        "OUT.latents/, removed once the run has finished)")
    parser.add_argument("--cache-budget-gb", type=positive_float, default=8.0,
                        help="largest latent cache --cache-latents auto builds, in GB (default 8)")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="N",
                        help="write a checkpoint every N steps into OUT.checkpoints/ (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in OUT.checkpoints/ (same settings and number of "
                        "processes needed)")
    parser.add_argument("--log-with", choices=("auto", "tensorboard", "jsonl", "none"), default="auto",
                        help="where accelerator.log writes, under OUT.logs/ (auto: tensorboard when installed, else "
                        "jsonl)")
    parser.add_argument("--log-every", type=positive_int, default=10, help="log figures every N steps (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def beside(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def lora_out(args: argparse.Namespace, out: Path) -> Path | None:
    if args.train == "adapter":
        if args.lora_out:
            raise InvalidInputError("--lora-out needs --train unet-lora or both")
        return None
    if args.train == "unet-lora":
        return out
    return safetensors_out(args.lora_out or str(out.with_name(out.stem + "_lora.safetensors")), args.overwrite)


def _check_paths(args: argparse.Namespace) -> tuple[Path, Path | None, Path]:
    missing = [flag for flag, value in (("--base", args.base), ("--adapter", args.adapter), ("--out", args.out))
               if not value]
    if missing:
        raise InvalidInputError(f"train-dpo needs {', '.join(missing)} (only --dry-run runs without them)")
    out = safetensors_out(args.out, args.overwrite)
    lora = lora_out(args, out)
    if args.resolution % 8:
        raise InvalidInputError(f"--resolution must be a multiple of 8, got {args.resolution}")
    if not Path(args.adapter).is_file():
        raise InvalidInputError(f"--adapter file not found: {args.adapter}")
    encoder_dir = Path(args.image_encoder) if args.image_encoder else Path(args.base) / "image_encoder"
    if args.image_encoder and not encoder_dir.is_dir():
        raise InvalidInputError(f"--image-encoder folder not found: {encoder_dir}")
    return out, lora, encoder_dir


def run(args: argparse.Namespace) -> dict | None:
    if args.dry_run:
        return dry_run(args)
    out, lora_path, encoder_dir = _check_paths(args)
    if args.train != "adapter":
        from ..training.lora import require_peft

        require_peft()

    from ..training import TrainConfig, train_dpo
    from ..visual_prompt import load_adapter

    started = time.perf_counter()
    adapter = load_adapter(args.adapter)
    examples, skipped = load_examples(args, adapter.layout.cross_dim, adapter.layout)
    if not examples:
        raise InvalidInputError(f"{args.data}: no usable preference pairs ({len(skipped)} skipped)")

    from ..pipeline import load_pipeline

    pipe = load_pipeline(args.base)
    encoder = None
    if any(e.needs_encoder for e in examples) and encoder_dir.is_dir():
        from ..pipeline.visual import load_image_encoder

        encoder = load_image_encoder(encoder_dir)
    config = TrainConfig(
        steps=args.steps, beta=args.beta, lr=args.lr, adam_epsilon=args.adam_epsilon, batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        resolution=args.resolution, seed=args.seed, train=args.train, lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha or float(args.lora_rank), mixed_precision=args.mixed_precision,
        lr_warmup_steps=args.lr_warmup_steps, checkpoint_every=args.checkpoint_every,
        checkpoint_dir=beside(out, ".checkpoints"), resume=args.resume, cache_latents=args.cache_latents,
        cache_dir=Path(args.latent_cache) if args.latent_cache else beside(out, ".latents"),
        cache_budget_gb=args.cache_budget_gb, log_with=args.log_with, log_dir=beside(out, ".logs"),
        log_every=args.log_every)
    result = train_dpo(pipe, adapter, examples, config, encoder, progress=not args.no_progress)
    if not result.is_main_process:
        return None  # one process writes the files and the report
    written = _write(args, adapter, result, out, lora_path, len(examples))
    if not args.latent_cache:  # the default cache beside OUT served this run (kept if it was interrupted)
        shutil.rmtree(config.cache_dir, ignore_errors=True)
    return {**written, "layout": adapter.layout.describe(), "train": args.train, "pairs": len(examples),
            "skipped": len(skipped), "steps": args.steps, "resumed_from": result.start_step, **result.summary(),
            "seconds": round(time.perf_counter() - started, 2)}


def _write(args: argparse.Namespace, adapter, result, out: Path, lora_path: Path | None, pairs: int) -> dict:
    from ..training.lora import lora_metadata
    from ..visual_prompt import load_adapter
    from ..weights import save_safetensors_files

    metadata = {"trained": "negative-visual diffusion-dpo", "train": args.train, "base": Path(args.base).name,
                "adapter": Path(args.adapter).name, "beta": args.beta, "steps": args.steps, "lr": args.lr,
                "batch_size": args.batch_size, "grad_accum": args.grad_accum, "processes": result.processes,
                "seed": args.seed, "pairs": pairs}
    files, written = [], {}
    if args.train != "unet-lora":
        kv_dtype = adapter.ip_adapter["1"].to_k_ip.weight.dtype
        state = {k: (v.to(kv_dtype) if k.startswith("ip_adapter.") else v)
                 for k, v in result.adapter.state_dict().items()}
        files.append((state, out, metadata))
        written["out"] = str(out)
    if lora_path is not None:
        files.append((result.lora, lora_path, {**metadata, **lora_metadata(args.lora_rank,
                                                                            args.lora_alpha or args.lora_rank)}))
        written["lora"] = str(lora_path)
        written.setdefault("out", str(lora_path))
    save_safetensors_files(files)
    if args.train != "unet-lora":
        load_adapter(out)  # what the injector will do: fail here, not later, if the layout is off
    return written
