"""CLI start-up: ``--help`` lists every command without importing a command module, and the
listed help is each module's own; ``bench startup`` reports its figures."""

import argparse
import json
import subprocess
import sys

from emotion_core import cli
from emotion_core.benchmarks import startup_bench


def _listed_help(parser):
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in commands._choices_actions}


def test_help_lists_the_modules_own_help():
    assert _listed_help(cli.build_parser("")) == _listed_help(cli.build_parser())


def test_help_imports_no_heavy_module_and_a_command_imports_its_own_module():
    probe = ("import contextlib, io, json, sys\nfrom emotion_core.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    code = main(sys.argv[1:])\n"
             "print(json.dumps([code, sorted(m for m in ('torch', 'numpy', 'transformers', 'diffusers', 'PIL', "
             "'emotion_core.cli.generate', 'emotion_core.cli.direction') if m in sys.modules)]))")

    def modules(*argv):
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    code, loaded = modules("direction", "--target", "awe", "--json")
    assert code == 0 and "emotion_core.cli.direction" in loaded and "emotion_core.cli.generate" not in loaded
    code, loaded = modules("-v", "nonsense")
    assert code == 2 and loaded == []


def test_chosen_command_skips_options():
    assert cli.chosen_command(["-v", "rewrite", "--json"]) == "rewrite"
    assert cli.chosen_command(["--help"]) == ""


def test_bench_startup_reports_help_time_and_heavy_modules():
    parser = argparse.ArgumentParser()
    startup_bench.add_arguments(parser)
    result = startup_bench.run(parser.parse_args(["--repeats", "1", "--skip-rewrite"]))
    assert result["help_heavy_modules"] == []
    assert 0 < result["python_s"] <= result["help_s"] < startup_bench.HELP_TARGET
    assert set(result["timings"]) == {"python", "help"} and "rewrite_cold_s" not in result
    assert result["within_targets"] is True
