"""``eval score`` end to end on HuggingFace ``accelerate``: each process scores its share of the
fixed batches (``loading``) and appends rows to its part file; the main process merges them into
``rows.jsonl`` and writes the summary files and ``report.html``. One process, one GPU or
``accelerate launch`` on many give the same files; a rerun into the same RUN_DIR resumes."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import InvalidInputError
from .items import EvalItem

log = logging.getLogger(__name__)


def critic_names(paths: Sequence[str | Path]) -> list[str]:
    """Each critic's name in rows and tables: its file stem (``_2``, ``_3``… when stems repeat)."""
    names: list[str] = []
    for path in paths:
        stem, name, k = Path(path).stem, Path(path).stem, 1
        while name in names:
            k += 1
            name = f"{stem}_{k}"
        names.append(name)
    return names


# metrics of the papers' tables that eval does not compute, and why (listed in the summary and report)
NOT_COMPUTED = {
    "fid": "not computed by eval: FID needs Inception-v3 FID weights (pytorch-fid/torchmetrics), which are neither "
           "shipped nor downloaded",
    "lpips": "not computed by eval: LPIPS needs its AlexNet/VGG network weights, which are neither shipped nor "
             "downloaded",
}
NO_CLIP = ("skipped: no --clip-model FILE (a local open_clip .safetensors with its text tower, e.g. a clip_zero_shot "
           "critic's file); CLIP weights are never downloaded")


def metrics_not_run(clip_model: str | Path | None) -> dict[str, str]:
    reasons = dict(NOT_COMPUTED)
    if clip_model is None:
        reasons.update(clip_score=NO_CLIP, clip_i=NO_CLIP)
    return reasons


def make_accelerator():
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise InvalidInputError("eval runs on HuggingFace accelerate, which is not installed: "
                                "pip install 'emotion-director[eval]'") from exc
    return Accelerator()


def score_items(items: Sequence[EvalItem], critic_paths: Sequence[str | Path], run_dir: Path, *,
                batch_size: int = 16, workers: int = 0, seed: int = 0, resamples: int = 1000,
                progress: bool = True, config: dict | None = None, clip_model: str | Path | None = None
                ) -> Iterator[dict]:
    """Score ``items`` into ``run_dir``; yields ``{"event": "progress", …}`` per batch and finally the
    summary (``{"event": "summary", …}``) on the main process."""
    from tqdm.auto import tqdm

    from ..critics import load_critic
    from .loading import fixed_batches, image_loader, shard_batches
    from .report import write_report
    from .rows import RowScorer
    from .store import PartWriter, check_config, iter_rows, merge, read_rows
    from .summary import summarize, write_summary

    if not items:
        raise InvalidInputError("no images to evaluate")
    for path in critic_paths:
        if not Path(path).is_file():
            raise InvalidInputError(f"--critic not found: {path}")
    if clip_model is not None and not Path(clip_model).is_file():
        raise InvalidInputError(f"--clip-model not found: {clip_model}")
    names = critic_names(critic_paths)
    accelerator = make_accelerator()
    rank, processes = accelerator.process_index, accelerator.num_processes
    run_dir = Path(run_dir)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_config(run_dir, {**(config or {}), "critics": dict(zip(names, (Path(p).name for p in critic_paths))),
                               "batch_size": batch_size, "clip_model": clip_model and Path(clip_model).name})
    accelerator.wait_for_everyone()
    critics = {name: load_critic(path, device=accelerator.device) for name, path in zip(names, critic_paths)}
    clip = None
    if clip_model is not None:
        from ..metrics.clip_similarity import ClipSimilarity

        clip = ClipSimilarity(clip_model, device=accelerator.device)
    keys = {item.key: item.index for item in items}
    done = {keys[key] for key in read_rows(run_dir) if key in keys}
    batches = shard_batches(fixed_batches(len(items), batch_size), done, rank, processes)
    todo = sum(1 for batch in batches for index in batch if index not in done)
    if accelerator.is_main_process and done:
        log.info("resuming %s: %d of %d rows already written", run_dir, len(done), len(items))
    scorer, writer = RowScorer(critics, batch_size, clip), PartWriter(run_dir, rank)
    bar = tqdm(total=todo, desc=f"eval [{rank}]" if processes > 1 else "eval", unit="img", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    started, scored = time.perf_counter(), 0
    for batch in image_loader(items, batches, workers):
        rows = [row for row in scorer.score(batch) if row["index"] not in done]
        writer.append(rows)
        scored += len(rows)
        bar.update(len(rows))
        if accelerator.is_main_process:
            elapsed = time.perf_counter() - started
            yield {"event": "progress", "process": rank, "done": scored, "total": todo,
                   "images_per_second": scored / elapsed if elapsed > 0 else None}
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        merge(run_dir, items)
        about = {name: {"file": Path(path).name, **critics[name].describe()} for name, path in zip(names, critic_paths)}
        summary = summarize(iter_rows(run_dir), about, seed=seed, resamples=resamples,
                            extra={"metrics_not_run": metrics_not_run(clip_model)})
        write_summary(run_dir, summary)
        report = write_report(run_dir, summary, iter_rows(run_dir))
        log.info("wrote %s", report)
        yield {"event": "summary", "run_dir": str(run_dir), "report": str(report), "images": summary["images"],
               "scored": summary["scored"], "skipped": len(summary["skipped"]),
               "overall": summary["overall"]}
    accelerator.wait_for_everyone()
