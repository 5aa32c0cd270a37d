"""The one condensed view of a loop report (``emotion_core.critic_loop.summary``) that the
node's panel, the CLI's metadata and Save Emotion Image's report all read."""

from __future__ import annotations

import json

import pytest
import torch

from emotion_core.critic_loop import Candidates, LoopSettings, run_critic_loop
from emotion_core.critic_loop.summary import pass_series, summary
from emotion_core.taxonomy import EMOTIONS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _report() -> dict:
    """Two passes of two candidates on a fixed source; the critic likes the later candidates more."""
    source = torch.zeros(1, 16, 16, 3)
    made = []

    def generate(seeds, denoise, state):
        made.extend(seeds)
        return Candidates(torch.rand(len(seeds), 16, 16, 3, generator=torch.Generator().manual_seed(len(made))))

    def critic(images):
        scores = torch.full((images.shape[0], 8), 0.1)
        scores[:, EMOTIONS.index("awe")] = 0.3
        if len(made) > 2:
            scores[-1] = torch.tensor([0.03] * 8)
            scores[-1, EMOTIONS.index("awe")] = 0.79
        return scores

    settings = LoopSettings(ssim_low=0.0, ssim_high=1.0, confidence=0.95, max_iterations=2, candidates=2, seed=3)
    return json.loads(json.dumps(run_critic_loop(generate, critic, "awe", settings, source=source).report))


def test_summary_condenses_the_outcome_and_the_passes():
    report = _report()
    best = report["best"]
    assert summary(report) == {
        "target": "awe", "passes": 2, "stopped": "max_iterations", "settings": report["settings"],
        "best": best["index"], "best_iteration": best["iteration"], "best_seed": best["seed"],
        "best_denoise": best["denoise"], "best_accepted": best["accepted"], "pick": best["pick"],
        "best_ssim": best["ssim"], "best_target_probability": best["target_probability"],
        "best_distribution": best["distribution"],
    }
    assert best["index"] == 3 and best["target_probability"] == pytest.approx(0.79)
    series = pass_series(report)
    assert [entry["iteration"] for entry in series] == [0, 1]
    assert series[1]["target_probability"] == pytest.approx([0.3, 0.79])
    assert all(len(entry["ssim"]) == len(entry["accepted"]) == 2 for entry in series)


def test_a_hand_made_report_needs_only_the_outcome():
    minimal = {"target": "fear", "passes": 1, "stopped": "confident", "best": {"seed": 4, "denoise": 1.0, "ssim": None}}
    outcome = summary(minimal)
    assert (outcome["target"], outcome["best_seed"], outcome["best_ssim"]) == ("fear", 4, None)
    assert outcome["settings"] is None and outcome["best"] is None and outcome["best_target_probability"] is None
