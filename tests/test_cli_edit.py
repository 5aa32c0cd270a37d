"""``emotion-director edit``: the critic loop on the tiny diffusers pipeline, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from emotion_core.cli import main
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.critic_assets import write_test_critics


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_sd_pipeline):
    root = tmp_path_factory.mktemp("edit")
    pipe = tiny_sd_pipeline["pipeline"]
    critic = write_test_critics(root / "models", TEST_FILES)["critic_clip_b32"]
    image = root / "src.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (68, 64, 3), dtype=np.uint8)).save(image)
    return {"pipe": pipe, "critic": critic, "image": image}


def _edit(files, out, *extra):
    return main(["edit", str(files["image"]), "--target", "awe", "--model", str(files["pipe"]), "--critic",
                 str(files["critic"]), "--out", str(out), "--steps", "2", "--max-iterations", "2", "--candidates", "2",
                 "--ssim-min", "0", "--ssim-max", "1", "--confidence", "1", "--json", *map(str, extra)])


def test_edit_writes_the_best_and_the_report(files, tmp_path, capsys):
    out, report = tmp_path / "best.png", tmp_path / "report.json"
    assert _edit(files, out, "--report", report) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passes"] == 2 and result["stopped"] == "max_iterations" and result["image"] == str(out)
    with Image.open(out) as image:
        assert image.size == (64, 64), "cropped to the 8 px grid"
    data = json.loads(report.read_text())
    assert [len(it["candidates"]) for it in data["iterations"]] == [2, 2]
    assert data["best"]["index"] == result["best"]

    again = tmp_path / "again.png"
    assert _edit(files, again) == 0
    capsys.readouterr()
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again))), "same seed, same image"


def test_edit_bad_input(files, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert _edit(files, out, "--ssim-min", "0.9", "--ssim-max", "0.1") == 2
    assert "ssim_low" in capsys.readouterr().err
    assert _edit(files, out, "--max-iterations", "0") == 2
    out.write_bytes(b"")
    assert _edit(files, out) == 2 and "exists" in capsys.readouterr().err
