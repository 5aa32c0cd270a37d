"""``bench bank`` runs bank build's extraction path and K-means and reports the figures the issue
names (small sizes here; the README's figures come from the defaults)."""

import json

import pytest

from emotion_core.cli import main


@pytest.mark.slow  # builds a full-size ViT-B/32 tower
def test_bench_bank_reports_rates_and_the_emoset_time(capsys):
    code = main(["bench", "bank", "--encoder", "vit-b-32", "--images", "2", "--batch-size", "1",
                 "--cluster-sizes", "200,2000", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    figures = json.loads(out)
    extraction = figures["extraction"]
    assert extraction["images"] == 2 and extraction["images_per_second"] > 0 and extraction["encoder"]["dim"] == 512
    assert set(figures["clustering_seconds"]) == {"200", "2000"} and figures["emoset_118k_images"] == 118_102
    hours = 118_102 / extraction["images_per_second"] / 3600
    assert abs(figures["emoset_118k_extraction_hours"] - round(hours, 2)) < 0.011
    assert main(["bench", "bank", "--cluster-sizes", "5000,10", "--json"]) == 2
    assert "--cluster-sizes must be two increasing counts" in capsys.readouterr().err
