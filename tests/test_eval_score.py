"""``eval score`` over a tiny EmoSet-layout tree and an edit manifest: every output file, critics of
different class orders remapped by name, skipped images listed, resume after an interrupted run,
a 2-process ``accelerate launch`` run equal to the 1-process run, bad input (exit 2)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.eval_data import noise_image, write_emotion_tree

from emotion_core.cli import main
from emotion_core.critics import load_critic
from emotion_core.images import load_image
from emotion_core.taxonomy import EMOEDITOR_ORDER, EMOTIONS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
PROBE, RESNET = "test_emoedit_probe", "test_emoeditor_predictor"


def _score(capsys, data, out, *critics, extra=()):
    argv = ["eval", "score", str(data), "--out", str(out), "--no-progress", "--json", "--workers", "0",
            "--eval-batch-size", "2", "--bootstrap", "200", *extra]
    for critic in critics:
        argv += ["--critic", str(critic)]
    code = main(argv)
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_emotion_tree(tmp_path_factory.mktemp("eval_tree") / "data", ("amusement", "awe", "sadness"), 3)


@pytest.fixture(scope="module")
def plain_run(tree, eval_critics, tmp_path_factory):
    """An uninterrupted run of the tree with the EmoEdit probe, for the resume tests to equal."""
    run = tmp_path_factory.mktemp("plain") / "run"
    assert main(["eval", "score", str(tree), "--out", str(run), "--no-progress", "--workers", "0",
                 "--eval-batch-size", "2", "--bootstrap", "200", "--critic", str(eval_critics["critic_emoedit"])]) == 0
    return run


def _rows(run):
    return [json.loads(line) for line in (run / "rows.jsonl").read_text().splitlines()]


def test_eval_score_writes_every_output(tree, eval_critics, tmp_path, capsys):
    run = tmp_path / "run"
    code, lines, _ = _score(capsys, tree, run, eval_critics["critic_emoedit"], eval_critics["critic_emoeditor"],
                            extra=["--workers", "1"])
    assert code == 0
    assert [line["event"] for line in lines][-1] == "summary" and lines[0]["event"] == "progress"
    for name in ("rows.jsonl", "summary.json", "summary.csv", "summary.md", "report.html", "config.json"):
        assert (run / name).is_file(), name
    rows = _rows(run)
    assert [row["index"] for row in rows] == list(range(10)) and len({row["key"] for row in rows}) == 10
    skipped = [row for row in rows if "skipped" in row]
    assert [row["image"] for row in skipped] == ["awe/broken.jpg"] and "not a readable image" in skipped[0]["skipped"]

    summary = json.loads((run / "summary.json").read_text())
    assert summary["images"] == 10 and summary["scored"] == 9
    assert summary["skipped"] == [{"image": "awe/broken.jpg", "reason": skipped[0]["skipped"]}]
    assert summary["critics"][RESNET]["class_order"] == list(EMOEDITOR_ORDER)
    for critic in (PROBE, RESNET):
        matrix = summary["confusion"][critic]
        assert [sum(matrix[EMOTIONS.index(e)]) for e in ("amusement", "awe", "sadness")] == [3, 3, 3]
        stat = summary["overall"]["critics"][critic]["emo_score"]
        assert stat["n"] == 9 and stat["ci95"][0] <= stat["mean"] <= stat["ci95"][1]
        assert set(summary["per_emotion"]) == {"amusement", "awe", "sadness"}

    # the ResNet's alphabetical outputs land under their own names
    resnet = load_critic(eval_critics["critic_emoeditor"])
    row = next(r for r in rows if "critics" in r)
    with torch.no_grad():
        pixels = load_image(row["path"]).permute(0, 3, 1, 2)
        raw = torch.softmax(resnet.logits(resnet.preprocess(pixels)), dim=1)[0]
    for emotion, value in zip(EMOEDITOR_ORDER, raw.tolist()):
        assert row["critics"][RESNET]["distribution"][emotion] == pytest.approx(value, abs=1e-6)

    table = list(csv.DictReader(io.StringIO((run / "summary.csv").read_text())))
    assert {"overall", "amusement", "awe", "sadness"} == {r["scope"] for r in table}
    assert any(r["critic"] == RESNET and r["metric"] == "emo_a" and r["scope"] == "overall" for r in table)
    markdown = (run / "summary.md").read_text()
    assert f"## {PROBE}" in markdown and f"## {RESNET}" in markdown and "awe/broken.jpg" in markdown
    report = (run / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4 and report.count("data:image/jpeg;base64,") == 9


def test_resume_after_an_interrupt_equals_the_plain_run(tree, eval_critics, plain_run, tmp_path, capsys):
    critic = eval_critics["critic_emoedit"]
    plain, resumed = plain_run, tmp_path / "resumed"
    shutil.copytree(plain, resumed)
    # as if interrupted: only 3 rows merged, one more in a part file, then a half-written row
    lines = (resumed / "rows.jsonl").read_text().splitlines(keepends=True)
    (resumed / "rows.jsonl").write_text("".join(lines[:3]))
    (resumed / "rows.part0.jsonl").write_text(lines[3] + lines[4][: len(lines[4]) // 2])
    for name in ("summary.json", "summary.csv", "summary.md", "report.html"):
        (resumed / name).unlink()
    code, lines_out, _ = _score(capsys, tree, resumed, critic)
    assert code == 0
    progress = [line for line in lines_out if line["event"] == "progress"]
    assert progress[-1]["total"] == 6, "only the missing rows were scored"
    assert (resumed / "summary.json").read_text() == (plain / "summary.json").read_text()
    assert (resumed / "rows.jsonl").read_text() == (plain / "rows.jsonl").read_text()
    assert not list(resumed.glob("rows.part*"))

    # a finished run rerun scores nothing; other critics in the same RUN_DIR are refused
    code, lines_out, _ = _score(capsys, tree, resumed, critic)
    assert code == 0 and not [line for line in lines_out if line["event"] == "progress"]
    code, _, err = _score(capsys, tree, resumed, eval_critics["critic_emoeditor"])
    assert code == 2 and "other settings" in err


def test_two_processes_give_the_same_summary(eval_critics, tmp_path, capsys):
    pytest.importorskip("accelerate")
    data = write_emotion_tree(tmp_path / "data", ("awe", "fear"), 3, broken=True)
    critic = eval_critics["critic_emoedit"]
    assert _score(capsys, data, tmp_path / "one", critic)[0] == 0
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    command = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
               "-m", "emotion_core", "eval", "score", str(data), "--critic", str(critic), "--out",
               str(tmp_path / "two"), "--workers", "0", "--eval-batch-size", "2", "--bootstrap", "200",
               "--no-progress", "--json"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events].count("summary") == 1, "only the main process reports the summary"
    assert done.stderr.count("loaded clip_probe critic") == 2, "both processes scored"
    assert (tmp_path / "two" / "summary.json").read_text() == (tmp_path / "one" / "summary.json").read_text()
    assert (tmp_path / "two" / "rows.jsonl").read_text() == (tmp_path / "one" / "rows.jsonl").read_text()


def test_bad_input_is_exit_2(eval_critics, tmp_path, capsys):
    critic = eval_critics["critic_emoedit"]
    image = noise_image(tmp_path / "data" / "a.png", (32, 32), 0)
    cases = {
        "unknown.jsonl": ('{"image": "a.png", "target": "joy"}\n', "unknown emotion 'joy'"),
        "outside.jsonl": ('{"image": "../../etc/passwd", "target": "awe"}\n', "outside the manifest's folder"),
        "outside_source.csv": ("image,target,source\na.png,awe,/etc/hosts\n", "outside the manifest's folder"),
        "header.csv": ("path,emotion\na.png,awe\n", "image,target"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / "data" / name).write_text(text)
        code, _, err = _score(capsys, tmp_path / "data" / name, tmp_path / "out", critic)
        assert code == 2 and message in err, (name, err)
    (tmp_path / "empty" / "awe").mkdir(parents=True)
    code, _, err = _score(capsys, tmp_path / "empty", tmp_path / "out", critic)
    assert code == 2 and "no images to evaluate" in err
    code, _, err = _score(capsys, image.parent / "unknown.jsonl", tmp_path / "out", tmp_path / "none.safetensors")
    assert code == 2
    assert not (tmp_path / "out" / "rows.jsonl").exists()


def test_bootstrap_is_seeded():
    from emotion_core.evaluation.summary import bootstrap_ci

    values = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2]
    first = bootstrap_ci(values, "overall/x/emo_a", seed=0, resamples=500)
    assert first == bootstrap_ci(values, "overall/x/emo_a", seed=0, resamples=500)
    assert first != bootstrap_ci(values, "overall/x/emo_a", seed=1, resamples=500)
    assert first[0] < sum(values) / len(values) < first[1]
    assert bootstrap_ci([0.5], "one", seed=0, resamples=500) is None


def test_emoset_118k_layout_and_split(eval_critics, tmp_path, capsys):
    """EmoSet-118K's own layout: image/<emotion>/ and the split lists; --split scores only its list.
    Files are read as the papers' scripts read them: an EXIF rotation is not applied."""
    from PIL import Image

    root = tmp_path / "EmoSet-118K"
    write_emotion_tree(root / "image", ("fear", "sadness"), 2, broken=False)
    rotated = root / "image" / "fear" / "fear_0.jpg"
    with Image.open(rotated) as image:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90° to display"
        image.save(rotated, exif=exif)
    entries = [["fear", "fear_0", "image/fear/fear_0.jpg", "annotation/fear/fear_0.json"],
               ["sadness", "sadness_1", "image/sadness/sadness_1.png", "annotation/sadness/sadness_1.json"]]
    (root / "test.json").write_text(json.dumps(entries))
    critic = eval_critics["critic_emoeditor"]
    code, lines, _ = _score(capsys, root, tmp_path / "split", critic, extra=["--split", "test"])
    assert code == 0 and lines[-1]["images"] == 2
    rows = _rows(tmp_path / "split")
    assert [(row["image"], row["target"]) for row in rows] == [("image/fear/fear_0.jpg", "fear"),
                                                               ("image/sadness/sadness_1.png", "sadness")]
    resnet = load_critic(critic)
    with Image.open(rotated) as image:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)[None]
    expected = resnet.predict(pixels)[0]
    turned = resnet.predict(pixels.rot90(-1, dims=(1, 2)))[0]  # what applying the EXIF rotation would give
    assert float((turned - expected).abs().max()) > 1e-4, "the check can tell the two apart"
    assert rows[0]["critics"][RESNET]["distribution"]["fear"] == pytest.approx(float(expected[EMOTIONS.index("fear")]),
                                                                               abs=1e-6)
    code, _, _ = _score(capsys, root, tmp_path / "all", critic)
    assert code == 0 and len(_rows(tmp_path / "all")) == 4, "without --split: every image under image/"
    (root / "val.json").write_text("[]")
    code, _, err = _score(capsys, root, tmp_path / "val", critic, extra=["--split", "val"])
    assert code == 2 and "empty" in err


def test_a_real_interrupt_leaves_whole_rows_and_the_rerun_finishes(tree, eval_critics, plain_run, tmp_path, capsys,
                                                                  monkeypatch):
    """Ctrl-C during the third batch: exit 1, the two finished batches are on disk as whole rows, no
    summary; the rerun scores only the rest and equals an uninterrupted run."""
    from emotion_core.evaluation import rows as rows_module

    critic = eval_critics["critic_emoedit"]
    calls = {"n": 0}
    original = rows_module.RowScorer.score

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(rows_module.RowScorer, "score", interrupted)
    run = tmp_path / "run"
    code, _, err = _score(capsys, tree, run, critic)
    assert code == 1 and "interrupted" in err
    assert not (run / "summary.json").exists() and not (run / "rows.jsonl").exists()
    part = (run / "rows.part0.jsonl").read_text()
    assert part.endswith("\n") and len(part.splitlines()) == 4, "two batches of two, whole lines"
    monkeypatch.setattr(rows_module.RowScorer, "score", original)
    code, lines, _ = _score(capsys, tree, run, critic)
    assert code == 0 and [e["total"] for e in lines if e["event"] == "progress"][-1] == 6
    assert (run / "summary.json").read_text() == (plain_run / "summary.json").read_text()
