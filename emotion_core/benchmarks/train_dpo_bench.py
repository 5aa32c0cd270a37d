"""``bench train-dpo``: seconds per optimizer step of ``train-dpo`` on the tiny test pipeline
(random weights in the diffusers layout; its VAE is full-depth, its UNet two levels), one
torch thread per process.

- ``latent_cache``: the step with the latent cache (no VAE in the step) against the step
  that VAE-encodes both images of every pair, in this process, variants interleaved, per-step
  CPU time from the second step on. ``ratio`` = cached / uncached; target <= 0.6.
- ``processes``: the same run (same global batch) as one process with batch 2·B and as two
  CPU processes with batch B under ``accelerate launch`` (the README's CPU recipe), each
  timed by the run itself (wall clock, the first step excluded). Two processes only help
  when two cores are free; on a loaded machine the figure says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .timing import add_timing_arguments, check_timing_arguments, pinned_threads, ratio_figures, time_interleaved

log = logging.getLogger(__name__)

CACHE_TARGET = 0.6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per timed run (default 8)")
    parser.add_argument("--batch-size", type=int, default=1, help="pairs per process and step (default 1)")
    parser.add_argument("--resolution", type=int, default=64, help="training image side (default 64)")
    parser.add_argument("--pairs", type=int, default=8, help="preference pairs in the data set (default 8)")
    parser.add_argument("--no-processes", action="store_true", help="skip the 1 vs 2 process runs")
    add_timing_arguments(parser, repeats=3, clock=None)


def _cache_variant(pipe, adapter, examples, encoder, steps: int, batch: int, resolution: int, cache_dir):
    from ..training import TrainConfig, train_dpo

    config = TrainConfig(steps=steps, beta=500.0, lr=1e-4, batch_size=batch, resolution=resolution, seed=0,
                         cache_latents="on" if cache_dir else "off", cache_dir=cache_dir)

    def run() -> float:
        marks = []
        train_dpo(pipe, adapter, examples, config, encoder, progress=False,
                  on_step=lambda step, terms: marks.append(time.process_time()))
        return (marks[-1] - marks[0]) / (len(marks) - 1)

    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launched(processes: int, argv: list[str]) -> dict:
    """One train-dpo run under accelerate launch on CPU processes pinned to one thread each."""
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [str(accelerate), "launch", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
               "--main_process_port", str(_free_port())]
    if processes > 1:
        command.append("--multi_gpu")
    done = subprocess.run([*command, "-m", "emotion_core", *argv], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"accelerate launch with {processes} processes failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _process_figures(files: dict, data: Path, folder: Path, args) -> dict:
    figures = {}
    for processes in (1, 2):
        out = folder / f"p{processes}.safetensors"
        batch = args.batch_size * (3 - processes)  # the same global batch: 2B in one process, B in each of two
        argv = ["train-dpo", "--data", str(data), "--base", str(files["pipeline"]), "--adapter",
                str(files["adapter_base"]), "--out", str(out), "--steps", str(args.steps + 1), "--batch-size",
                str(batch), "--resolution", str(args.resolution), "--beta", "500", "--lr", "1e-4", "--log-with",
                "none", "--no-progress", "--json", "--overwrite", "--latent-cache", str(folder / "latents")]
        report = _launched(processes, argv)
        figures[f"{processes}_process"] = {"seconds_per_step": report["seconds_per_step"], "batch_per_process": batch,
                                           "global_batch": report["global_batch"]}
    one, two = figures["1_process"]["seconds_per_step"], figures["2_process"]["seconds_per_step"]
    figures["speedup"] = round(one / two, 3)
    return figures


def run(args: argparse.Namespace) -> dict:
    check_timing_arguments(args)
    from ..pipeline import load_pipeline
    from ..pipeline.visual import load_image_encoder
    from ..preference import read_dataset
    from ..testing.diffusers_assets import write_tiny_sd_pipeline
    from ..testing.preference_assets import write_colour_pairs
    from ..training.data import prepare_examples
    from ..visual_prompt import load_adapter

    with tempfile.TemporaryDirectory(prefix="bench_train_dpo_") as tmp:
        folder = Path(tmp)
        files = write_tiny_sd_pipeline(folder / "pipe")
        data = write_colour_pairs(folder / "data", args.pairs, size=args.resolution)
        pipe, encoder = load_pipeline(files["pipeline"]), load_image_encoder(files["image_encoder"])
        adapter = load_adapter(files["adapter_base"])
        examples, _ = prepare_examples(read_dataset(data).pairs, adapter.layout.cross_dim)
        with pinned_threads(args.threads):
            variants = {name: _cache_variant(pipe, adapter, examples, encoder, args.steps, args.batch_size,
                                             args.resolution, cache)
                        for name, cache in (("vae_each_step", None), ("latent_cache", folder / "cache"))}
            timings = time_interleaved(variants, args.repeats)
        cache = {**ratio_figures(timings["latent_cache"], timings["vae_each_step"], target=CACHE_TARGET),
                 "timings": {name: t.summary() for name, t in timings.items()}}
        result = {"model": "tiny diffusers SD pipeline (tests' tiny_sd_pipeline)", "resolution": args.resolution,
                  "batch_size": args.batch_size, "steps": args.steps, "threads_per_process": args.threads,
                  "latent_cache": cache}
        if not args.no_processes:
            result["processes"] = _process_figures(files, data, folder, args)
    return result
