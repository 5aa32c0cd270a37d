"""``bench injector``: the figures it reports, at a tiny size, and its memory counter."""

import argparse

import pytest
import torch

from emotion_core.benchmarks import injector_bench as injector
from emotion_core.errors import InvalidInputError


def _args(*argv):
    parser = argparse.ArgumentParser()
    injector.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_live_tensor_bytes_counts_new_storage_only():
    tracker = injector.LiveTensorBytes()
    existing = torch.zeros(1000)
    with tracker.mode():
        a = torch.ones(1000)  # 4000 bytes
        view = a.view(10, 100)  # alias: nothing new
        existing.add_(1)  # in place on old memory: nothing new
        b = a * 2  # 4000 bytes
        del a, view
        c = b + 1  # a is gone: live stays at 8000
    assert tracker.peak == 8000
    assert tracker.live == 8000
    del b, c
    assert tracker.live == 0


def test_benchmark_reports_time_and_memory_figures():
    result = injector.run(_args("--size", "8", "--steps", "1", "--repeats", "1"))
    for key in ("ratio", "memory_growth_ratio", "plain_s_per_step", "injected_s_per_step", "plain_peak_bytes",
                "injected_peak_bytes", "adapter_weight_bytes", "projected_kv_bytes"):
        assert result[key] > 0, key
    assert result["cross_attention_layers"] == 7
    assert result["memory_growth_bytes"] >= result["projected_kv_bytes"]
    assert result["memory_growth_ratio"] <= injector.MEMORY_TARGET


def test_bad_arguments_are_bad_input():
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        injector.run(_args("--size", "12"))
