"""``bench loop``: the figures it reports on a short scripted run (numbers are printed, not asserted)."""

import json

import pytest

from emotion_core.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_loop_json_reports_overhead_and_model_evaluations(capsys):
    assert main(["bench", "loop", "--iterations", "2", "--steps", "4", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "loop"
    assert 0 <= result["overhead_fraction"] < 1
    assert result["passes"] == 2 and result["stopped"] == "confident"
    # the scripted critic is confident on the last pass; partial passes use fewer evaluations
    # than EmoEditor's fixed full re-edit per pass
    assert 0 < result["model_evaluations"] < result["paper_model_evaluations"]


def test_bench_loop_bad_arguments_exit_2(capsys):
    assert main(["bench", "loop", "--iterations", "0", "--json"]) == 2
    assert "at least 1" in capsys.readouterr().err
