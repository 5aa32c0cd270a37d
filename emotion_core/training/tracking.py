"""Where ``accelerator.log`` writes: TensorBoard when it is installed, else a JSON Lines file
(one ``{"step": s, ...figures}`` object a line), so every run leaves a readable log without
extra packages."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

LOG_CHOICES = ("auto", "tensorboard", "jsonl", "none")
JSONL_FILE = "metrics.jsonl"


def _jsonl_tracker_class():
    from accelerate.tracking import GeneralTracker

    class JSONLTracker(GeneralTracker):
        """accelerate tracker appending one JSON object per ``log`` call to ``<dir>/<run>/metrics.jsonl``."""

        name = "jsonl"
        requires_logging_directory = True

        def __init__(self, run_name: str, logging_dir: str | os.PathLike):
            super().__init__()
            self.path = Path(logging_dir) / run_name / JSONL_FILE
            self.path.parent.mkdir(parents=True, exist_ok=True)

        @property
        def tracker(self):
            return self.path

        def store_init_configuration(self, values: dict):
            self.path.with_name("config.json").write_text(json.dumps(values, indent=1, default=str))

        def log(self, values: dict, step: int | None = None, **kwargs):
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": step, **values}) + "\n")

    return JSONLTracker


def log_with(choice: str, logging_dir: str | os.PathLike | None, run_name: str):
    """The ``log_with`` argument for ``Accelerator`` (``None``: no logging)."""
    if choice == "none" or logging_dir is None:
        return None
    if choice == "auto":
        choice = "tensorboard" if importlib.util.find_spec("tensorboard") is not None else "jsonl"
    if choice == "tensorboard":
        return "tensorboard"
    return _jsonl_tracker_class()(run_name, logging_dir)
