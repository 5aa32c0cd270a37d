"""``bench loop``: its JSON keys on a short run with the real critic and SSIM, and that its
figures can fail (slow SSIM is loop overhead; evaluations follow the steps per pass)."""

import argparse
import json
import time

import pytest

from emotion_core.benchmarks import loop_bench
from emotion_core.cli import main
from emotion_core.ssim import EmoEditorSSIM

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SHORT = ("--iterations", "2", "--steps", "4", "--repeats", "1")
KEYS = {"benchmark", "overhead_fraction", "overhead_target", "overhead_seconds_per_pass", "total_seconds", "passes",
        "stopped", "model_evaluations", "paper_model_evaluations", "steps", "denoise_range",
        "equal_steps_model_evaluations", "equal_steps_passes", "equal_steps_stopped", "emoeditor_model_evaluations",
        "emoeditor_passes", "emoeditor_stopped", "acceptance", "critic", "torch_threads", "clock", "within_target"}


def test_bench_loop_json_keys_and_evaluation_counts(capsys):
    assert main(["bench", "loop", *SHORT, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS and result["benchmark"] == "loop"
    assert 0 < result["overhead_fraction"] < 1 and result["passes"] == 2
    # this loop's passes run round(4 * d) of the 4 steps, d in [0.55, 0.85]: 2 or 3 each
    assert 2 * 2 <= result["model_evaluations"] <= 2 * 3
    assert result["paper_model_evaluations"] == loop_bench.PAPER_STEPS * result["passes"]
    # equal steps per pass: every pass of either procedure costs the same 4 evaluations
    assert result["equal_steps_model_evaluations"] == 4 * result["equal_steps_passes"]
    assert result["emoeditor_model_evaluations"] == 4 * result["emoeditor_passes"]
    assert result["acceptance"] == {"ssim": [0.5, 0.8], "confidence": 0.6, "rule": "or", "ssim_open": True}


def test_slow_ssim_is_overhead_and_fails_the_target(monkeypatch):
    real = EmoEditorSSIM.__call__

    def slowed(self, *args, **kwargs):
        end = time.process_time() + 0.3  # CPU time: the default clock
        while time.process_time() < end:
            pass
        return real(self, *args, **kwargs)

    monkeypatch.setattr(EmoEditorSSIM, "__call__", slowed)
    parser = argparse.ArgumentParser()
    loop_bench.add_arguments(parser)
    result = loop_bench.run(parser.parse_args(list(SHORT)))
    assert result["overhead_fraction"] > loop_bench.OVERHEAD_TARGET and result["within_target"] is False
    assert result["overhead_seconds_per_pass"] >= 0.3


def test_bench_loop_bad_arguments_exit_2(capsys):
    assert main(["bench", "loop", "--iterations", "0", "--json"]) == 2
    assert "at least 1" in capsys.readouterr().err
