"""Benchmarks run by ``emotion-director bench NAME``.

Each entry names a module ``emotion_core.benchmarks.<name>_bench`` that defines
``add_arguments(parser)`` and ``run(args) -> dict`` (the figures, printed as
one JSON object with ``--json``). Modules are imported to build the CLI, so
they import heavy libraries inside ``run`` only. To add one, add a line here.
"""

BENCHMARKS: dict[str, str] = {
    "rewrite": "Agent Prompt Rewriter: emotion alignment, semantic preservation, diversity, speed",
    "injector": "Visual Prompt Injector: per-step time and peak memory, plain vs injected",
    "guidance": "Negative Visual DPO guidance: per-step time of three branches vs two-branch CFG",
    "loop": "Emotion Critic Loop: loop overhead fraction, model evaluations vs EmoEditor's procedure",
    "eval": "eval score: images/s per critic (one thread) and the time for EmoSet's test split",
    "startup": "CLI start-up: --help and a cold builtin rewrite, each in a fresh process",
    "bank": "bank build: images/s of feature extraction, K-means seconds at 10k/100k features, EmoSet-118K time",
    "train-dpo": "train-dpo: s/step with and without the latent cache, 1 vs 2 CPU processes (accelerate launch)",
}
