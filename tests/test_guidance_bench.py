"""``bench guidance``: the figures it reports at a tiny size (numbers are printed by the CLI, not asserted)."""

import argparse

import pytest
import torch

from emotion_core.benchmarks import guidance_bench as guidance
from emotion_core.cli import main


def _args(*argv):
    parser = argparse.ArgumentParser()
    guidance.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_benchmark_reports_ratio_and_one_call_per_step():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CPU: one thread is much faster for this size
    try:
        result = guidance.run(_args("--size", "8", "--steps", "1", "--repeats", "1"))
    finally:
        torch.set_num_threads(threads)
    assert result["ratio"] > 0 and result["cfg_s_per_step"] > 0 and result["three_branch_s_per_step"] > 0
    assert result["model_calls_per_step"] == 1.0 and result["cfg_model_calls_per_step"] == 1.0


def test_bad_arguments_exit_2(capsys):
    assert main(["bench", "guidance", "--size", "12", "--json"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--steps", "x")
