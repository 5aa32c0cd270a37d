"""``python interrupted_train_dpo.py N train-dpo ...``: the real ``train-dpo`` command, stopped
by a KeyboardInterrupt in every process right after optimizer step N (as Ctrl-C would stop
it), so a multi-process run can be interrupted at a known point after a checkpoint."""

from __future__ import annotations

import sys

import emotion_core.training as training
from emotion_core.cli import main


def _interrupting(after: int):
    train = training.train_dpo

    def run(*args, **kwargs):
        def stop(step, terms):
            if step == after:
                raise KeyboardInterrupt

        return train(*args, **{**kwargs, "on_step": stop})

    return run


if __name__ == "__main__":
    training.train_dpo = _interrupting(int(sys.argv[1]))  # the CLI looks train_dpo up when it runs
    sys.exit(main(sys.argv[2:]))
