"""The README's sample rewrites are what ``emotion-director rewrite`` prints today: each ``$`` line of the
samples block is run through the CLI entry point, and every line under it must be in its output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from emotion_core import cli
from emotion_core.agents.sentence_encoder import encoder_available

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- rewrite-samples[^>]*-->\s*```text\n(.*?)```\s*<!-- /rewrite-samples -->", re.DOTALL)

pytestmark = pytest.mark.skipif(not encoder_available(), reason="the samples are printed with MiniLM installed")


def samples() -> list[tuple[list[str], list[str]]]:
    match = BLOCK.search(README.read_text(encoding="utf-8"))
    assert match, "README has no rewrite-samples block"
    runs: list[tuple[list[str], list[str]]] = []
    for line in match.group(1).splitlines():
        if line.startswith("$ "):
            argv = shlex.split(line[2:])
            assert argv[0] == "emotion-director"
            runs.append((argv[1:], []))
        elif line.strip():
            runs[-1][1].append(line)
    return runs


def test_readme_samples_block_has_rewrites():
    runs = samples()
    assert len(runs) >= 3 and all(expected for _, expected in runs)


@pytest.mark.parametrize("argv, expected", samples(), ids=lambda value: " ".join(value)[:60] if value else "")
def test_readme_sample_is_what_the_command_prints(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rewrite",))
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    for line in expected:
        assert line in printed, "README sample is stale; the command now prints:\n" + "\n".join(printed)
