"""``bench startup``: how long the CLI takes to start, each run in a fresh Python process.

- ``help_s``: ``emotion-director --help`` (lists the commands without importing any command
  module). Target < 1 s.
- ``rewrite_cold_s``: ``emotion-director rewrite PROMPT --emotion awe`` with the builtin backend:
  start, load MiniLM and the tokenizer, one rewrite, exit. Target < 5 s.
- ``python_s``: a bare ``python -c pass``, the floor under both.
- ``help_heavy_modules``: which of torch, numpy, transformers, diffusers, PIL ``--help`` imports
  (should be none).

Each figure is the min and median wall time over ``--repeats`` runs, interleaved; the processes
run with ``OMP_NUM_THREADS`` = ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

from .timing import add_timing_arguments, check_timing_arguments, time_interleaved

log = logging.getLogger(__name__)

HELP_TARGET = 1.0
REWRITE_TARGET = 5.0
HEAVY = ("torch", "numpy", "transformers", "diffusers", "PIL")

_HEAVY_PROBE = (
    "import contextlib, io, json, sys\n"
    "from emotion_core.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        main(['--help'])\n"
    "    except SystemExit:\n"
    "        pass\n"
    f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_timing_arguments(parser, repeats=3, clock=None)
    parser.add_argument("--skip-rewrite", action="store_true", help="time --help only (no MiniLM load)")


def _runner(argv: list[str], env: dict[str, str]):
    def run() -> None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return run


def run(args: argparse.Namespace) -> dict:
    check_timing_arguments(args)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cli = [sys.executable, "-m", "emotion_core"]
    variants = {"python": _runner([sys.executable, "-c", "pass"], env), "help": _runner(cli + ["--help"], env)}
    if not args.skip_rewrite:
        variants["rewrite_cold"] = _runner(cli + ["rewrite", "a quiet harbour at dawn", "--emotion", "awe"], env)
    start = time.perf_counter()
    timings = time_interleaved(variants, args.repeats, warmup=0, clock="wall")
    log.info("startup runs took %.1f s", time.perf_counter() - start)
    probe = subprocess.run([sys.executable, "-c", _HEAVY_PROBE], env=env, capture_output=True, text=True, check=True)
    heavy = json.loads(probe.stdout.strip().splitlines()[-1])
    result = {
        "benchmark": "startup",
        "threads": args.threads,
        "repeats": args.repeats,
        "python_s": round(timings["python"].min, 3),
        "help_s": round(timings["help"].min, 3),
        "help_median_s": round(timings["help"].median, 3),
        "help_target_s": HELP_TARGET,
        "help_heavy_modules": heavy,
        "timings": {name: timing.summary(3) for name, timing in timings.items()},
    }
    within = timings["help"].min < HELP_TARGET and not heavy
    if "rewrite_cold" in timings:
        result.update({"rewrite_cold_s": round(timings["rewrite_cold"].min, 3),
                       "rewrite_cold_median_s": round(timings["rewrite_cold"].median, 3),
                       "rewrite_target_s": REWRITE_TARGET})
        within = within and timings["rewrite_cold"].min < REWRITE_TARGET
    result["within_targets"] = within
    return result
