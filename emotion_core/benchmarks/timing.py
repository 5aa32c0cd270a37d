"""Robust timing for benchmarks that compare variants on a shared, noisy CPU.

Why: on a 2-core machine shared with other work, multi-threaded torch timings swing
2-4x between runs, and a single long run per variant measures the neighbours as much
as the code. What holds up is one torch thread, many short repeats, variants
interleaved (so a busy second hurts every variant alike) and robust statistics.

Use it like this::

    from .timing import add_timing_arguments, pinned_threads, time_interleaved, ratio_figures

    def add_arguments(parser):
        add_timing_arguments(parser, repeats=7)           # --threads N (default 1), --repeats R

    def run(args):
        with pinned_threads(args.threads):
            timings = time_interleaved({"plain": step_plain, "injected": step_injected}, args.repeats)
        figures = ratio_figures(timings["injected"], timings["plain"], target=1.05)
        # {"ratio": median/median, "ratio_min": min/min, "noisy": bool, "noise": ...}
        return {**figures, "timings": {name: t.summary() for name, t in timings.items()}}

Clocks: ``--clock cpu`` (the default) is the process's CPU time (``time.process_time``): with one
torch thread every op runs on the calling thread, and CPU time does not count the seconds the
scheduler gives to other processes, which on a shared machine is most of the wall-clock noise
(a 2-minute run here used 40 s of CPU). ``--clock wall`` is ``time.perf_counter``, for work in
other processes (``bench startup``) or multi-threaded runs where waiting is part of the cost.

A variant is a callable run once per repeat. If it returns a number, that number is its
seconds (e.g. seconds per step measured inside, after its own set-up); otherwise the
wall time of the whole call is used. Repeats rotate the variants' order, so no variant
always runs first (after the other's allocations) or last.

``noisy`` is true when a ratio cannot be trusted to the precision the goals need: the
relative spread (inter-quartile range / median) of a variant exceeds ``NOISE_LIMIT``,
or the min-based and median-based ratios disagree by more than ``AGREEMENT_LIMIT``.
Benchmarks then still print the numbers, with ``"noisy": true`` beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
NOISE_LIMIT = 0.10  # relative inter-quartile range of one variant's repeats
AGREEMENT_LIMIT = 0.05  # |ratio_min - ratio| / ratio


@dataclass(frozen=True)
class Timing:
    """Seconds of one variant's repeats, in the order they ran."""

    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Inter-quartile range / median (0 with fewer than 2 repeats: nothing to say)."""
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q3 - q1) / self.median

    def summary(self, digits: int = 5) -> dict:
        return {"min_s": round(self.min, digits), "median_s": round(self.median, digits),
                "spread": round(self.spread, 4), "repeats": len(self.samples)}


def add_timing_arguments(parser: argparse.ArgumentParser, repeats: int = 7, clock: str | None = "cpu") -> None:
    """``--threads`` (torch threads while timing, default 1), ``--repeats`` (timed repeats per
    variant) and ``--clock`` (cpu or wall; not offered with ``clock=None``, for work timed in
    other processes, which only the wall clock sees)."""
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while timing (default 1: multi-threaded timings on a shared CPU swing 2-4x)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed repeats per variant, interleaved (default {repeats})")
    if clock is None:
        return
    parser.add_argument("--clock", choices=tuple(CLOCKS), default=clock,
                        help=f"cpu: this process's CPU time, immune to other processes' load; wall: elapsed "
                        f"time (default {clock})")


def check_timing_arguments(args: argparse.Namespace) -> None:
    from ..errors import InvalidInputError

    if args.threads < 1:
        raise InvalidInputError(f"--threads must be at least 1, got {args.threads}")
    if args.repeats < 1:
        raise InvalidInputError(f"--repeats must be at least 1, got {args.repeats}")


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def _seconds(variant: Callable[[], float | None], clock: Callable[[], float]) -> float:
    start = clock()
    reported = variant()
    elapsed = clock() - start
    return float(reported) if isinstance(reported, (int, float)) else elapsed


def time_interleaved(variants: dict[str, Callable[[], float | None]], repeats: int, warmup: int = 1,
                     clock: str = "cpu") -> dict[str, Timing]:
    """Run each variant ``warmup`` times untimed, then ``repeats`` timed rounds; round r runs the
    variants in an order rotated by r. Variants that report their own seconds should read
    ``CLOCKS[clock]`` too."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_seconds(variants[name], CLOCKS[clock]))
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def ratio_figures(numerator: Timing, denominator: Timing, target: float | None = None) -> dict:
    """``ratio`` (median/median), ``ratio_min`` (min/min), ``noisy`` and why; ``within_target`` when a
    target is given (judged on the min-based ratio, the least disturbed by other load, and false
    when noisy)."""
    ratio = numerator.median / denominator.median
    ratio_min = numerator.min / denominator.min
    reasons = []
    worst = max(numerator.spread, denominator.spread)
    if worst > NOISE_LIMIT:
        reasons.append(f"repeat spread {worst:.2f} > {NOISE_LIMIT}")
    disagreement = abs(ratio_min - ratio) / ratio
    if disagreement > AGREEMENT_LIMIT:
        reasons.append(f"min and median ratios differ by {disagreement:.2f} > {AGREEMENT_LIMIT}")
    figures = {"ratio": round(ratio, 4), "ratio_min": round(ratio_min, 4), "noisy": bool(reasons),
               "noise": "; ".join(reasons) or None}
    if target is not None:
        figures["ratio_target"] = target
        figures["within_target"] = ratio_min <= target and not reasons
    return figures
