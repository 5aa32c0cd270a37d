"""``eval generate`` and ``eval edit``: run the generation or editing protocol through the real
``generate`` / ``edit`` commands (one run per prompt x emotion, or per source x target), write
the run's ``manifest.jsonl``, then score it as ``eval score`` does. Finished outputs are kept, so
a rerun resumes; with ``accelerate launch`` each process generates every n-th job."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from ..errors import InvalidInputError

log = logging.getLogger(__name__)


def _emotions(text: str, option: str) -> list[str]:
    from ..taxonomy import EMOTIONS, parse_emotion

    if text.strip().lower() == "all":
        return list(EMOTIONS)
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise InvalidInputError(f"{option} is empty; give 'all' or emotion names")
    return [parse_emotion(name) for name in names]


def _prompts(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read --prompts {path}: {exc.strerror}") from exc
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise InvalidInputError(f"--prompts {path} has no prompts")
    return prompts


def _check_critics(args: argparse.Namespace) -> None:
    for path in args.critic:
        if not Path(path).is_file():
            raise InvalidInputError(f"--critic not found: {path}")


def _write_manifest(run_dir: Path, records: list[dict]) -> Path:
    from ..evaluation.store import write_text

    path = run_dir / "manifest.jsonl"
    write_text(path, "".join(json.dumps(record) + "\n" for record in records))
    return path


def _score(args: argparse.Namespace, run_dir: Path, manifest: Path, config: dict):
    from ..evaluation.items import read_items
    from ..evaluation.run import score_items
    from .eval import score_events, score_options

    yield from score_events(score_items(read_items(manifest), args.critic, run_dir, config=config,
                                        **score_options(args)), args)


def _process():
    from ..evaluation.run import make_accelerator

    accelerator = make_accelerator()
    return accelerator, accelerator.process_index, accelerator.num_processes


def run_generate(args: argparse.Namespace):
    from tqdm.auto import tqdm

    from . import generate
    from .eval import check_compare

    prompts, emotions = _prompts(args.prompts), _emotions(args.emotions, "--emotions")
    _check_critics(args)
    check_compare(args)
    run_dir = Path(args.out)
    base = argparse.Namespace(**vars(args))
    # --critic-loop writes one image per run: one run per seed then, else one batch of --per-prompt
    base.batch, base.overwrite, base.report, base.json = 1 if args.critic_loop else args.per_prompt, True, None, False
    base.critic = args.critic[0] if args.critic_loop else None  # the loop judges with the first critic
    base.emotion, base.prompt, base.out = emotions[0], prompts[0], str(run_dir / "images")
    checked = argparse.Namespace(**vars(base))  # generate.run checks (and completes) its own copy per job
    generate._check_inputs(checked)  # every bad option is reported before a model loads
    accelerator, rank, processes = _process()
    jobs = [(j, prompt, emotion) for j, prompt in enumerate(prompts) for emotion in emotions]
    seeds = [args.seed + k for k in range(args.per_prompt)]
    records, models = [], None
    for number, (j, prompt, emotion) in enumerate(tqdm(jobs, desc="eval generate", file=sys.stderr,
                                                       disable=args.no_progress or rank != 0)):
        folder = run_dir / "images" / emotion / f"p{j:04d}"
        text, negative = prompt, args.negative_prompt
        if args.rewrite:
            from ..agents import rewrite

            rewritten = rewrite(prompt, emotion, seed=args.seed)
            text, negative = rewritten.rewrite, negative or rewritten.negative
        paths = generate.output_paths(folder, emotion, seeds)
        records += [{"image": path.relative_to(run_dir).as_posix(), "target": emotion, "prompt": text}
                    for path in paths]
        if number % processes != rank or all(path.is_file() for path in paths):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        models = models or generate.load_models(checked)
        for seed in seeds[:1] if not args.critic_loop else seeds:
            run = argparse.Namespace(**vars(base))
            run.emotion, run.prompt, run.negative_prompt, run.out, run.seed = emotion, text, negative, str(folder), seed
            for _ in generate.run(run, models):
                pass
    accelerator.wait_for_everyone()
    manifest = run_dir / "manifest.jsonl"
    if rank == 0:
        manifest = _write_manifest(run_dir, records)
    accelerator.wait_for_everyone()
    config = {"protocol": "generate", "prompts": prompts, "emotions": emotions, "per_prompt": args.per_prompt,
              "seed": args.seed, "rewrite": args.rewrite, "model": Path(args.model).name}
    yield from _score(args, run_dir, manifest, config)


def _sources(folder: str) -> list[Path]:
    from ..evaluation.items import IMAGE_SUFFIXES

    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"--sources {folder}: not a folder")
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InvalidInputError(f"--sources {folder}: no {'/'.join(sorted(IMAGE_SUFFIXES))} images")
    return found


def run_edit(args: argparse.Namespace):
    from tqdm.auto import tqdm

    from . import edit
    from .eval import check_compare

    check_compare(args)
    sources, targets = _sources(args.sources), _emotions(args.targets, "--targets")
    _check_critics(args)
    run_dir = Path(args.out)
    accelerator, rank, processes = _process()
    if rank == 0:
        (run_dir / "sources").mkdir(parents=True, exist_ok=True)
        for source in sources:  # the run keeps its sources: the manifest's paths stay inside it
            copy = run_dir / "sources" / source.name
            if not copy.is_file():
                shutil.copyfile(source, copy)
    accelerator.wait_for_everyone()
    jobs = [(source, target) for source in sources for target in targets]
    records = []
    for number, (source, target) in enumerate(tqdm(jobs, desc="eval edit", file=sys.stderr,
                                                   disable=args.no_progress or rank != 0)):
        out = run_dir / "edits" / target / f"{source.stem}.png"
        records.append({"image": out.relative_to(run_dir).as_posix(), "target": target,
                        "source": f"sources/{source.name}"})
        if number % processes != rank or out.is_file():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        run = argparse.Namespace(**vars(args))
        run.image, run.target, run.out, run.critic = str(source), target, str(out), args.critic[0]
        run.overwrite, run.report, run.json = False, None, False
        edit.run(run)
    accelerator.wait_for_everyone()
    manifest = run_dir / "manifest.jsonl"
    if rank == 0:
        manifest = _write_manifest(run_dir, records)
    accelerator.wait_for_everyone()
    config = {"protocol": "edit", "sources": [s.name for s in sources], "targets": targets, "seed": args.seed,
              "procedure": "emoeditor" if args.emoeditor else "sdedit"}
    yield from _score(args, run_dir, manifest, config)


HANDLERS = {"generate": run_generate, "edit": run_edit}
