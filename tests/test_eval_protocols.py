"""``eval generate`` and ``eval edit`` on the tiny SD pipeline: the protocols run the real
``generate`` / ``edit`` commands, write a manifest, score it; ``--compare`` puts two runs in one
table; a rerun generates nothing new."""

from __future__ import annotations

import json

import pytest
from helpers.eval_data import noise_image
from PIL import Image

from emotion_core.cli import main
from emotion_core.report import PNG_METADATA_KEY

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def _generate(tiny_sd_pipeline, critic, prompts, out, *extra):
    return ("eval", "generate", "--model", tiny_sd_pipeline["pipeline"], "--prompts", prompts, "--emotions",
            "awe,fear", "--per-prompt", "2", "--critic", critic, "--out", out, "--steps", "2", "--width", "32",
            "--height", "32", "--workers", "0", "--bootstrap", "100", "--no-progress", "--json", *extra)


def test_eval_generate_and_compare(tiny_sd_pipeline, eval_critics, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a quiet harbour\n")
    critic = eval_critics["critic_emoedit"]
    plain = tmp_path / "plain"
    code, lines, err = _run(capsys, *_generate(tiny_sd_pipeline, critic, prompts, plain))
    assert code == 0, err
    manifest = [json.loads(line) for line in (plain / "manifest.jsonl").read_text().splitlines()]
    assert [(m["target"], m["image"]) for m in manifest] == [
        ("awe", "images/awe/p0000/awe_0.png"), ("awe", "images/awe/p0000/awe_1.png"),
        ("fear", "images/fear/p0000/fear_0.png"), ("fear", "images/fear/p0000/fear_1.png")]
    with Image.open(plain / manifest[2]["image"]) as image:
        meta = json.loads(image.text[PNG_METADATA_KEY])
    assert meta["emotion"] == "fear" and meta["prompt"] == "a quiet harbour" and meta["seed"] == 0
    assert meta["generator"] == "emotion-director generate"
    summary = json.loads((plain / "summary.json").read_text())
    assert summary["scored"] == 4 and set(summary["per_emotion"]) == {"awe", "fear"}
    assert (plain / "report.html").is_file()

    stamp = (plain / manifest[0]["image"]).stat().st_mtime_ns
    code, lines, _ = _run(capsys, *_generate(tiny_sd_pipeline, critic, prompts, plain))
    assert code == 0 and (plain / manifest[0]["image"]).stat().st_mtime_ns == stamp, "a rerun keeps finished images"
    assert not [line for line in lines if line["event"] == "progress"], "and scores nothing again"

    rewritten = tmp_path / "rewritten"
    code, lines, err = _run(capsys, *_generate(tiny_sd_pipeline, critic, prompts, rewritten, "--rewrite",
                                               "--compare", plain, "--label", "with-rewriter"))
    assert code == 0, err
    used = [json.loads(line)["prompt"] for line in (rewritten / "manifest.jsonl").read_text().splitlines()]
    assert all(prompt != "a quiet harbour" for prompt in used) and used[0] != used[2], "rewritten per emotion"
    comparison = lines[-1]
    assert comparison["event"] == "comparison" and list(comparison["rows"]) == ["with-rewriter", "plain"]
    table = (rewritten / "compare.md").read_text()
    assert table.count("| with-rewriter |") == 1 and table.count("| plain |") == 1
    assert sum(line.startswith("|---") for line in table.splitlines()) == 1, "one table"
    assert "Emo-A (test_emoedit_probe)" in table
    assert "data:image/png;base64," in (rewritten / "compare.html").read_text()


def test_eval_edit_scores_source_edit_pairs(tiny_sd_pipeline, eval_critics, tmp_path, capsys):
    sources = tmp_path / "sources"
    noise_image(sources / "harbour.png", (40, 48), 3)
    out = tmp_path / "edit_run"
    code, lines, err = _run(capsys, "eval", "edit", "--sources", sources, "--targets", "awe", "--model",
                            tiny_sd_pipeline["pipeline"], "--critic", eval_critics["critic_emoeditor"], "--out", out,
                            "--steps", "2", "--max-iterations", "1", "--candidates", "1", "--ssim-min", "0",
                            "--ssim-max", "1", "--confidence", "1", "--workers", "0", "--bootstrap", "100",
                            "--no-progress", "--json")
    assert code == 0, err
    assert lines[-1]["event"] == "summary" and lines[-1]["scored"] == 1
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["image"] == "edits/awe/harbour.png"
    row = rows[0]
    assert row["source"].endswith("sources/harbour.png") and (out / "sources" / "harbour.png").is_file()
    assert 0.0 < row["ssim_emoedit"] <= 1.0 and 0.0 < row["ssim_emoeditor"] <= 1.0
    entry = row["critics"]["test_emoeditor_predictor"]
    assert {"emo_s", "esmi", "s_emo", "s_str", "emo_a"} <= set(entry)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["ssim_emoedit"]["n"] == 1 and "esmi" in summary["overall"]["critics"]["test_emoeditor_predictor"]


def test_eval_protocol_bad_input(tiny_sd_pipeline, eval_critics, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n\n")
    code, _, err = _run(capsys, *_generate(tiny_sd_pipeline, eval_critics["critic_emoedit"], prompts, tmp_path / "o"))
    assert code == 2 and "has no prompts" in err
    prompts.write_text("a boat\n")
    code, _, err = _run(capsys, *_generate(tiny_sd_pipeline, eval_critics["critic_emoedit"], prompts, tmp_path / "o",
                                           "--compare", tmp_path / "missing"))
    assert code == 2 and "not a finished eval run" in err
    code, _, err = _run(capsys, "eval", "edit", "--sources", tmp_path, "--targets", "joy", "--model",
                        tiny_sd_pipeline["pipeline"], "--critic", eval_critics["critic_emoedit"], "--out", tmp_path / "e")
    assert code == 2
    assert not (tmp_path / "o").exists()
