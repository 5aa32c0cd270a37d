"""Out-of-memory during training becomes advice on the options that lower memory, instead of
a CUDA stack trace."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import InvalidInputError


class TrainingOutOfMemoryError(InvalidInputError):
    """The run does not fit the device at these settings; the message says which to change."""


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError)
                                                        and "out of memory" in str(exc).lower())


@contextmanager
def advise_on_oom(batch_size: int, grad_accum: int, processes: int, resolution: int,
                  mixed_precision: str) -> Iterator[None]:
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
        global_batch = batch_size * grad_accum * processes
        hints = [f"lower --batch-size (now {batch_size} pairs per process and micro-step) and raise --grad-accum "
                 f"(now {grad_accum}) to keep the global batch of {global_batch} pairs"]
        if mixed_precision == "no":
            hints.append("use --mixed-precision bf16 (or fp16 on GPUs without bf16)")
        if resolution > 512:
            hints.append(f"or train at a lower --resolution (now {resolution})")
        raise TrainingOutOfMemoryError("out of memory during a training step: " + "; ".join(hints)
                                       + f" ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
