"""benchmarks.timing: interleaved repeats, robust ratios, and the noisy flag."""

import argparse
import time

import pytest
import torch

from emotion_core.benchmarks.timing import (
    Timing,
    add_timing_arguments,
    check_timing_arguments,
    pinned_threads,
    ratio_figures,
    time_interleaved,
)
from emotion_core.errors import InvalidInputError


def _busy(seconds):
    """Spends ``seconds`` of CPU time (the default clock), however loaded the machine is."""
    def run():
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    return run


def test_a_deliberately_slowed_variant_exceeds_the_target():
    timings = time_interleaved({"fast": _busy(0.002), "slow": _busy(0.004)}, repeats=5)
    figures = ratio_figures(timings["slow"], timings["fast"], target=1.5)
    assert figures["ratio_min"] > 1.5 and figures["within_target"] is False
    same = ratio_figures(timings["fast"], timings["fast"], target=1.05)
    assert same["ratio"] == 1.0 and same["ratio_min"] == 1.0


def test_variants_interleave_with_rotating_order_and_reported_seconds_win():
    order = []
    timings = time_interleaved({"a": lambda: order.append("a") or 0.5, "b": lambda: order.append("b")},
                               repeats=3, warmup=1)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert timings["a"].samples == (0.5, 0.5, 0.5) and max(timings["b"].samples) < 0.5


def test_spread_makes_a_ratio_noisy():
    steady = Timing((1.0, 1.0, 1.01, 1.0, 1.0))
    shaky = Timing((1.0, 1.6, 1.0, 2.2, 1.3))
    assert ratio_figures(steady, steady)["noisy"] is False
    noisy = ratio_figures(shaky, steady, target=2.0)
    assert noisy["noisy"] is True and "spread" in noisy["noise"] and noisy["within_target"] is False
    assert shaky.summary()["repeats"] == 5 and shaky.summary()["min_s"] == 1.0


def test_threads_are_pinned_and_restored_and_checked():
    before = torch.get_num_threads()
    with pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    parser = argparse.ArgumentParser()
    add_timing_arguments(parser, repeats=4)
    args = parser.parse_args([])
    assert args.threads == 1 and args.repeats == 4
    with pytest.raises(InvalidInputError, match="--threads"):
        check_timing_arguments(parser.parse_args(["--threads", "0"]))
