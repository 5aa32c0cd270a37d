"""Training checkpoints through ``accelerator.save_state`` / ``load_state``.

A checkpoint is a folder ``step_XXXXXXXX`` holding accelerate's optimizer, scheduler and
per-process RNG states, ``trainable.safetensors`` (only what trains: the adapter and/or
the LoRA, not the frozen UNet accelerate would otherwise write) and ``train_state.json``
(the step and the settings a resumed run must share). It is written into a temp folder
that is renamed when complete, so an interrupted save leaves the previous checkpoint as
the newest. accelerate loads its files weights-only.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

from ..errors import InvalidInputError, UnsafeCheckpointError

log = logging.getLogger(__name__)

PREFIX = "step_"
KEEP = 2
STATE_FILE = "train_state.json"
TRAINABLE_FILE = "trainable.safetensors"
# settings a resumed run must share with the checkpoint, and the option that sets each
MUST_MATCH = {"train": "--train", "lora_rank": "--lora-rank", "lora_alpha": "--lora-alpha",
              "world_size": "number of processes", "seed": "--seed", "beta": "--beta",
              "batch_size": "--batch-size", "grad_accum": "--grad-accum", "resolution": "--resolution",
              "adapter_digest": "--adapter"}


def install_hooks(accelerator, module) -> None:
    """Make save_state/load_state write and read only the trainable tensors of ``module``."""

    def save(models, weights, output_dir):
        from safetensors.torch import save_file

        if accelerator.is_main_process:
            state = {k: v.detach().cpu().contiguous() for k, v in module.trainable_state().items()}
            save_file(state, os.path.join(output_dir, TRAINABLE_FILE))
        weights.clear()

    def load(models, input_dir):
        from safetensors.torch import load_file

        models.clear()
        module.load_trainable_state(load_file(os.path.join(input_dir, TRAINABLE_FILE)))

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and (p / STATE_FILE).is_file())


def save(accelerator, folder: Path, step: int, settings: dict) -> Path:
    """Every process calls this (each saves its RNG state); returns the checkpoint folder."""
    final = folder / f"{PREFIX}{step:08d}"
    partial = folder / f".{final.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (partial / STATE_FILE).write_text(json.dumps({"step": step, **settings}, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
            for old in checkpoints(folder)[:-KEEP]:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:  # interrupted or failed: the half-written folder goes, the previous checkpoint stays
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def check_settings(path: Path, saved: dict, settings: dict) -> None:
    """Refuse to resume when a setting that shapes the run differs; say which and how."""
    differences = [f"{MUST_MATCH.get(key, key)}: checkpoint {saved.get(key)!r}, now {value!r}"
                   for key, value in settings.items() if saved.get(key) != value]
    if differences:
        raise InvalidInputError(f"cannot resume from {path}: it was trained with other settings ("
                                + "; ".join(differences) + "); resume with the same settings, or train into a new "
                                "--out")


def newest(folder: Path, settings: dict) -> tuple[Path | None, int]:
    """The newest checkpoint and its step, after checking it was trained with ``settings``
    ((None, 0) when there is none)."""
    found = checkpoints(folder)
    if not found:
        log.warning("--resume: no checkpoint in %s, starting at step 0", folder)
        return None, 0
    path = found[-1]
    try:
        saved = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path / STATE_FILE}: unreadable ({exc}); delete the checkpoint to start again") \
            from exc
    check_settings(path, saved, settings)
    return path, int(saved["step"])


def load(accelerator, path: Path) -> None:
    """Optimizer, schedule, RNG states and the trainable tensors (after ``accelerator.prepare``)."""
    try:
        accelerator.load_state(str(path))
    except pickle.UnpicklingError as exc:  # accelerate loads weights-only: this file would run code
        raise UnsafeCheckpointError(f"{path}: a file needs full pickle to load, which can run arbitrary code; it "
                                    "was refused (delete the checkpoint to start again)") from exc
    except (OSError, RuntimeError, KeyError) as exc:
        raise InvalidInputError(f"{path}: unreadable checkpoint ({exc}); delete it to start again") from exc
    log.info("resumed from %s", path.name)
