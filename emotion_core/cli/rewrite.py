"""``emotion-director rewrite "PROMPT" --emotion E``: the Agent Prompt Rewriter
offline (builtin agents by default). Batches: ``--prompts-file FILE`` (one
prompt a line, ``-`` for stdin) and ``--emotion all``; results stream one per
line, and the encoder is loaded once for the whole batch. ``--json`` lines
carry the agents' chain (appraisal, concepts, elements, phrases, round-2 votes
with reasons); ``--explain`` prints that chain as an indented tree."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

from ..errors import InvalidInputError
from ..taxonomy import EMOTIONS, parse_emotion
from . import add_json_flag
from .arguments import finite_float, positive_float, positive_int, seed_int


def register(subparsers) -> None:
    from ..agents import BACKENDS, MAX_AGENTS

    parser = subparsers.add_parser("rewrite", help="rewrite a prompt so it shows an emotion (MC-Agent)",
                                   description=__doc__)
    parser.add_argument("prompt", nargs="?", help="the prompt to rewrite (or use --prompts-file)")
    parser.add_argument("--emotion", required=True, help=f"target emotion ({', '.join(EMOTIONS)}) or 'all'")
    parser.add_argument("--prompts-file", type=Path, help="one prompt a line ('-' reads stdin)")
    parser.add_argument("--agents", type=positive_int, default=5, help=f"number of persona agents, 1..{MAX_AGENTS} (default 5)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed (default 0); same seed, same rewrite with builtin")
    parser.add_argument("--creativity", type=finite_float, default=0.5, help="0 = most-voted concepts, 1 = most varied (default 0.5)")
    parser.add_argument("--token-budget", type=positive_int, default=77, help="CLIP tokens incl. start/end (default 77)")
    parser.add_argument("--backend", choices=BACKENDS, default="builtin", help="agent backend (default builtin)")
    parser.add_argument("--base-url", default="", help="openai-compatible: base URL, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument("--model", default="", help="openai-compatible: model name; llama-cpp: path of a .gguf file")
    parser.add_argument("--timeout", type=positive_float, default=30.0, help="seconds the LLM agents may take (default 30)")
    parser.add_argument("--transcript", action="store_true", help="include the whole transcript (subject slots, "
                        "excluded elements, every ballot)")
    parser.add_argument("--explain", action="store_true", help="print each agent's chain and votes as an indented tree")
    add_json_flag(parser)
    parser.set_defaults(handler=handle)


def _prompts(args: argparse.Namespace) -> list[str]:
    if (args.prompt is None) == (args.prompts_file is None):
        raise InvalidInputError("give either a PROMPT or --prompts-file, not both or neither")
    if args.prompts_file is None:
        return [args.prompt]
    try:
        text = sys.stdin.read() if str(args.prompts_file) == "-" else args.prompts_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read prompts file {args.prompts_file}: {exc.strerror}") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InvalidInputError(f"prompts file {args.prompts_file} has no prompts")
    return prompts


def _emotions(value: str) -> tuple[str, ...]:
    return EMOTIONS if value.strip().lower() == "all" else (parse_emotion(value),)


def handle(args: argparse.Namespace) -> Iterator[dict]:
    from ..agents import BackendSettings

    prompts, emotions = _prompts(args), _emotions(args.emotion)
    settings = BackendSettings(args.backend, args.base_url, args.model, args.timeout)
    return _results(args, prompts, emotions, settings)


def _results(args, prompts, emotions, settings) -> Iterator[dict]:
    from ..agents import rewrite
    from ..agents.explain import explain

    for prompt in prompts:
        for emotion in emotions:
            result = rewrite(prompt, emotion, agents=args.agents, creativity=args.creativity, seed=args.seed,
                             backend=settings, token_budget=args.token_budget)
            if args.explain and not args.json:
                yield {"text": explain(result.transcript)}
                continue
            record = result.as_record()
            if args.json:
                record["chain"] = result.chain
            if args.explain:
                record["explain"] = explain(result.transcript)
            if result.warnings:
                record["warnings"] = result.warnings
            if args.transcript:
                record["transcript"] = result.transcript
            yield record
