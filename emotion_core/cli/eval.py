"""``emotion-director eval score|generate|edit``: the papers' evaluation tables at dataset scale.

- ``eval score DIR|MANIFEST --critic FILE [--critic FILE…] --out RUN_DIR``: every image scored by
  every critic (EmoSet-style ``<emotion>/`` folders, EmoSet-118K with ``--split``, or a CSV/JSONL
  manifest ``image,target[,source,prompt]``); writes rows.jsonl, summary.json/.csv/.md and
  report.html. Rerunning into the same RUN_DIR resumes; ``accelerate launch -m emotion_core eval
  score …`` shares the work between processes.
- ``eval generate``: prompts x emotions x N seeds through ``generate`` (its options apply), then
  ``eval score``; ``--compare RUN_DIR…`` adds finished runs to one table and report.
- ``eval edit``: every source image edited toward each target through ``edit`` (its options
  apply), then the source->edit pairs scored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from .arguments import non_negative_int, positive_int

# options of generate/edit that eval sets itself for each run of the protocol
PROTOCOL_OWNED = {"generate": ("--emotion", "--prompt", "--out", "--batch", "--overwrite", "--json", "--report"),
                  "edit": ("image", "--target", "--out", "--overwrite", "--json", "--report")}


def register(commands) -> None:
    parser = commands.add_parser("eval", help="the papers' evaluation tables over a dataset, with an HTML report",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    protocols = parser.add_subparsers(dest="protocol", metavar="PROTOCOL", parser_class=type(parser))
    protocols.required = True
    score = protocols.add_parser("score", help="score a folder or manifest of images",
                                 description="Score images with one or more critics and write the tables.")
    score.add_argument("data", metavar="DIR_OR_MANIFEST", help="EmoSet-style folder (<emotion>/ subfolders, or "
                       "EmoSet-118K's image/<emotion>/) or a .csv/.jsonl manifest with image,target[,source,prompt]")
    score.add_argument("--split", choices=("train", "val", "test"), help="EmoSet-118K: score the images of its "
                       "<split>.json list")
    _common(score)
    score.set_defaults(handler=run_score)
    _protocol_parser(protocols, "generate")
    _protocol_parser(protocols, "edit")


def _common(parser: argparse.ArgumentParser, critic_required: bool = True) -> None:
    parser.add_argument("--critic", action="append", required=critic_required, default=None, metavar="FILE",
                        help="critic weight file; repeat for several (each gets its own columns)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (rerun into it to resume)")
    parser.add_argument("--eval-batch-size", type=positive_int, default=16,
                        help="images per critic forward pass (default 16)")
    parser.add_argument("--workers", type=non_negative_int, default=2,
                        help="DataLoader processes decoding images (default 2; 0 = in the main process)")
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000,
                        help="bootstrap resamples for the 95%% intervals (default 1000; 0 = none)")
    parser.add_argument("--bootstrap-seed", type=non_negative_int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR",
                        help="finished eval runs to put beside this one in compare.md / compare.html (in RUN_DIR)")
    parser.add_argument("--label", help="this run's name in comparisons (default: the RUN_DIR's name)")
    parser.add_argument("--clip-model", metavar="FILE", help="local open_clip .safetensors with its text tower "
                        "(e.g. a clip_zero_shot critic's file): adds CLIP-score (with prompts) and CLIP-I (edits); "
                        "without it they are listed as skipped (CLIP weights are never downloaded)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(parser)


def _protocol_parser(protocols, name: str) -> None:
    from .protocol_options import protocol_parser

    protocol_parser(protocols, name, PROTOCOL_OWNED[name], _common)


def score_options(args: argparse.Namespace) -> dict:
    return {"batch_size": args.eval_batch_size, "workers": args.workers, "seed": args.bootstrap_seed,
            "resamples": args.bootstrap, "progress": not args.no_progress, "clip_model": args.clip_model}


def run_score(args: argparse.Namespace):
    from ..evaluation.items import read_items
    from ..evaluation.run import score_items

    check_compare(args)
    items = read_items(args.data, args.split)
    config = {"data": str(Path(args.data).resolve()), "split": args.split}
    return score_events(score_items(items, args.critic, Path(args.out), config=config, **score_options(args)), args)


def check_compare(args: argparse.Namespace) -> None:
    from ..errors import InvalidInputError

    for other in args.compare:
        if not (Path(other) / "summary.json").is_file():
            raise InvalidInputError(f"--compare {other}: no summary.json (not a finished eval run)")
    names = [args.label or Path(args.out).name, *(Path(other).name for other in args.compare)]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"--compare: two runs would share a name in the table ({', '.join(names)}); "
                                "give this run a --label or compare folders with different names")


def score_events(events, args: argparse.Namespace):
    """Progress events only with --json (the bar is on stderr); the summary always; then, with
    --compare, the comparison (written by the process that wrote the summary)."""
    run_dir = Path(args.out)
    summarized = False
    for event in events:
        summarized = summarized or event["event"] == "summary"
        if event["event"] != "progress" or args.json:
            yield event
    if args.compare and summarized:
        from ..evaluation.compare import write_comparison

        runs = {args.label or run_dir.name: run_dir}
        for other in args.compare:
            runs[Path(other).name] = Path(other)
        yield {"event": "comparison", "compare": str(run_dir / "compare.html"), **write_comparison(run_dir, runs)}
