"""End-to-end timing in a real ComfyUI server (``COMFYUI_PATH``): the quickstart graph
(workflows/api/emotion_quickstart.json, the tiny test checkpoint) run as a user's install runs
it, four ways with the same seed:

- ``ksampler``: the graph as shipped (KSampler, no visual prompt);
- ``injector``: a Visual Prompt Injector (test adapter, the awe visual prompt from the test
  prompt bank) between the checkpoint and the KSampler;
- ``dpo``: the Negative Visual DPO Sampler in the KSampler's place (awe visual prompt, sadness
  as the negative visual prompt), three branches per step;
- ``injector`` is also the two-branch baseline of ``dpo`` (same visual prompt, CFG).

Each prompt's execution time is read from ``/history`` (``execution_start`` to
``execution_success``). Repeats change the seed (the same seed in every variant of a repeat),
so ComfyUI's cache re-runs the sampler, decode and save; the loaders and text encoders stay
cached, as in a user's session. The server runs with ``OMP_NUM_THREADS`` = ``--threads``
(default 1). Prints one JSON object: per-variant min/median/spread seconds and the ratios
``injector`` (/ ksampler) and ``dpo`` (/ injector) with ``benchmarks.timing``'s noisy flag.

    COMFYUI_PATH=/path/to/ComfyUI python tools/bench_comfyui.py [--steps 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

log = logging.getLogger("bench_comfyui")

ADAPTER = "test_ip_adapter_sd15.safetensors"
BANK = "test_emotion_bank.safetensors"


def graphs(steps: int, side: int) -> dict[str, dict]:
    """API-format prompts of the four variants, built from the shipped quickstart graph."""
    base = json.loads((ROOT / "workflows" / "api" / "emotion_quickstart.json").read_text(encoding="utf-8"))
    base["7"]["inputs"]["steps"] = steps
    base["6"]["inputs"]["width"] = base["6"]["inputs"]["height"] = side
    prompt = base["2"]["inputs"]["text"]
    visual = {
        "100": {"class_type": "VisualPromptAdapterLoader", "inputs": {"adapter_name": ADAPTER}},
        "101": {"class_type": "EmotionVisualPromptBank",
                "inputs": {"emotion": "awe", "bank_name": BANK, "adapter": ["100", 0], "text": prompt, "top_k": 3,
                           "combine": "weighted", "negative_emotion": "none"}},
        "102": {"class_type": "EmotionVisualPromptBank",
                "inputs": {"emotion": "sadness", "bank_name": BANK, "adapter": ["100", 0], "text": prompt,
                           "top_k": 3, "combine": "weighted", "negative_emotion": "none"}},
    }
    injector = {**copy.deepcopy(base), **copy.deepcopy(visual)}
    injector["103"] = {"class_type": "VisualPromptInjector",
                       "inputs": {"model": ["1", 0], "adapter": ["100", 0], "weight": 0.8, "weight_schedule": "uniform",
                                  "start_percent": 0.0, "end_percent": 1.0, "image_combine": "concat",
                                  "visual_prompt": ["101", 0]}}
    injector["7"]["inputs"]["model"] = ["103", 0]
    dpo = {**copy.deepcopy(base), **copy.deepcopy(visual)}
    sampler = dpo["7"]["inputs"]
    dpo["7"] = {"class_type": "NegativeVisualDPOSampler",
                "inputs": {"model": ["1", 0], "adapter": ["100", 0], "positive": sampler["positive"],
                           "negative": sampler["negative"], "positive_visual_prompt": ["101", 0],
                           "negative_visual_prompt": ["102", 0], "latent_image": sampler["latent_image"],
                           "seed": sampler["seed"], "steps": steps, "cfg": sampler["cfg"], "visual_scale": 2.0,
                           "visual_schedule": "constant", "visual_weight": 0.8,
                           "sampler_name": sampler["sampler_name"], "scheduler": sampler["scheduler"],
                           "denoise": 1.0}}
    return {"ksampler": base, "injector": injector, "dpo": dpo}


def execution_seconds(entry: dict) -> float:
    """``execution_start`` to ``execution_success`` of a /history entry (ComfyUI stamps them in ms)."""
    stamps = {event: data.get("timestamp") for event, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (default 20, as the quickstart)")
    parser.add_argument("--side", type=int, default=512, help="image side (default 512, as the quickstart)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant, interleaved (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    comfyui = os.environ.get("COMFYUI_PATH")
    if not comfyui:
        print("error: set COMFYUI_PATH to a ComfyUI checkout", file=sys.stderr)
        return 2
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    from helpers.comfyui_server import ComfyUIServer, prepare_base_dir

    variants = graphs(args.steps, args.side)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench_comfyui_") as base_dir:
        prepare_base_dir(Path(base_dir))
        server = ComfyUIServer(comfyui, base_dir)
        server.start(timeout=900)
        try:
            names = list(variants)
            for repeat in range(args.repeats + 1):  # round 0 warms up: loads models, fills caches
                for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                    prompt = copy.deepcopy(variants[name])
                    prompt["7"]["inputs"]["seed"] = 42 + repeat
                    took = execution_seconds(server.run(prompt, timeout=1800))
                    if repeat:
                        seconds[name].append(took)
                    log.info("round %d %s: %.3f s", repeat, name, took)
        finally:
            server.stop()
    from emotion_core.benchmarks.timing import Timing, ratio_figures

    timings = {name: Timing(tuple(values)) for name, values in seconds.items()}
    print(json.dumps({
        "benchmark": "comfyui_e2e", "graph": f"emotion_quickstart (test_sd15_tiny, {args.side}x{args.side})",
        "steps": args.steps, "repeats": args.repeats, "threads": args.threads, "clock": "wall",
        "seconds": {name: timing.summary(3) for name, timing in timings.items()},
        "injector": ratio_figures(timings["injector"], timings["ksampler"], 1.05),
        "dpo": ratio_figures(timings["dpo"], timings["injector"], 1.52),
        "dpo_vs_plain": ratio_figures(timings["dpo"], timings["ksampler"]),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
