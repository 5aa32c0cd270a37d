"""``bench eval`` reports images/s per critic and the extrapolated time for EmoSet's test split."""

from __future__ import annotations

import json

import pytest

from emotion_core.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_eval_figures(capsys, tmp_path):
    (tmp_path / "test.json").write_text(json.dumps([["awe", f"awe_{k}", f"image/awe/awe_{k}.jpg", ""]
                                                    for k in range(50)]))
    assert main(["bench", "eval", "--json", "--images", "2", "--batch-size", "2", "--critics",
                 "emoeditor_resnet18", "--emoset", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 1 and result["emoset_test_images"] == 50
    figures = result["critics"]["emoeditor_resnet18"]
    assert figures["images_per_second"] > 0 and figures["images_per_cpu_second"] > 0
    assert figures["emoset_test_hours"] == pytest.approx(50 / figures["images_per_second"] / 3600)
    assert 0 < result["edit_pairs_per_second"] < figures["images_per_second"], "edit metrics cost extra"
    assert main(["bench", "eval", "--critics", "resnet50"]) == 2


def test_default_split_size_is_fifteen_percent_of_emoset():
    from emotion_core.benchmarks.eval_bench import _test_split_size

    size, source = _test_split_size(None)
    assert size == round(118_102 * 0.15) and "15%" in source
