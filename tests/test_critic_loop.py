"""Iterative Emotion Inference loop logic against scripted generators and critics: every
acceptance branch, the hard cap and fallback picks, AND vs OR, chaining and direction
re-estimation, EmoEditor's test.py procedure (open window, kept-image limit, first-edit
direction, its pick and the source fallback), interruption, seed reproducibility, bad
settings."""

from __future__ import annotations

import json

import pytest
import torch

from emotion_core.critic_loop import (
    EMOEDITOR_NUM_LOOP, EMOEDITOR_PASS_CAP, EMOEDITOR_PRESET, Candidates, LoopSettings, emoeditor_settings, pass_steps,
    pick_best, pick_emoeditor, run_critic_loop,
)
from emotion_core.errors import InvalidInputError
from emotion_core.taxonomy import EMOTIONS

SIZE = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def peaked(emotion: str, p: float) -> list[float]:
    """A distribution with ``p`` on ``emotion`` and the rest spread evenly."""
    rest = (1.0 - p) / 7
    return [p if e == emotion else rest for e in EMOTIONS]


class Script:
    """Candidate k (in generation order) gets scripted (ssim, distribution); images encode k."""

    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.calls: list[tuple[list[int], float, object]] = []
        self.critic_calls = 0

    def generate(self, seeds, denoise, state):
        first = sum(len(s) for s, _, _ in self.calls)
        self.calls.append((list(seeds), denoise, state))
        ids = torch.arange(first, first + len(seeds), dtype=torch.float32)
        images = ((ids + 1) / 256).view(-1, 1, 1, 1).expand(-1, SIZE, SIZE, 3).clone()
        return Candidates(images, latents=ids.view(-1, 1, 1, 1).expand(-1, 4, 2, 2).clone())

    @staticmethod
    def index(images):
        return (images[:, 0, 0, 0] * 256).round().long() - 1

    def critic(self, images):
        self.critic_calls += 1
        if (images == SOURCE).all():
            return torch.tensor([peaked("sadness", 0.7)])
        return torch.tensor([self.outcomes[int(i)][1] for i in self.index(images)])

    def similarity(self, source, images):
        return torch.tensor([self.outcomes[int(i)][0] for i in self.index(images)], dtype=torch.float64)

    def run(self, settings, target="awe", **kwargs):
        kwargs.setdefault("source", SOURCE)
        return run_critic_loop(self.generate, self.critic, target, settings, similarity=self.similarity, **kwargs)


SOURCE = torch.zeros(1, SIZE, SIZE, 3)
GOOD = (0.65, peaked("awe", 0.8))  # in the window, awe on top and confident
WRECKED_BUT_AWE = (0.2, peaked("awe", 0.8))  # emotion right, scene lost
KEPT_NO_EMOTION = (0.7, peaked("sadness", 0.8))  # scene kept, emotion not there
NOTHING = (0.3, peaked("fear", 0.6))


def test_accept_on_first_try():
    script = Script([GOOD] * 10)
    result = script.run(LoopSettings(max_iterations=5))
    assert result.report["passes"] == 1 and result.report["stopped"] == "confident"
    assert result.best_index == 0 and result.report["best"]["pick"].startswith("confident")
    assert result.images.shape == (1, SIZE, SIZE, 3) and result.latents.shape == (1, 4, 2, 2)
    assert script.critic_calls == 2, "source once + one batch"
    json.dumps(result.report)


def test_never_accepted_hits_the_hard_cap_and_falls_back():
    outcomes = [(0.3, peaked("fear", 0.6)), (0.95, [0.05, 0.3, 0.05, 0.05, 0.4, 0.05, 0.05, 0.05]),
                (0.1, peaked("fear", 0.9))] * 4
    script = Script(outcomes)
    result = script.run(LoopSettings(max_iterations=4, candidates=3, rule="and"))
    assert result.report["passes"] == 4 and result.report["stopped"] == "max_iterations"
    assert len(script.calls) == 4, "every pass counts toward the cap, rejected or not"
    assert not any(j.accepted for j in result.judgements)
    assert result.best_index == 1, "highest p(awe) of all candidates"
    assert "nothing accepted" in result.report["best"]["pick"]
    assert all(state.base_index is None for _, _, state in script.calls), "nothing accepted: keep editing the source"


def test_or_accepts_what_and_rejects():
    script = Script([WRECKED_BUT_AWE, GOOD])
    with_or = script.run(LoopSettings(rule="or", max_iterations=3))
    assert with_or.report["passes"] == 1 and with_or.best_index == 0
    assert with_or.judgements[0].why.startswith("accepted: SSIM 0.200 below 0.5; OR top-1 is awe")

    script = Script([WRECKED_BUT_AWE, GOOD])
    with_and = script.run(LoopSettings(rule="and", max_iterations=3))
    assert with_and.report["passes"] == 2 and with_and.best_index == 1
    assert with_and.judgements[0].why.startswith("rejected") and with_and.judgements[1].accepted

    script = Script([KEPT_NO_EMOTION] * 3)
    result = script.run(LoopSettings(rule="or", max_iterations=3))
    assert all(j.accepted and not j.confident for j in result.judgements)
    assert result.report["stopped"] == "max_iterations"


def test_fallback_same_valence_then_target_probability():
    # accepted (OR, SSIM in window) but never confident: same-valence top-1 wins over a higher p(awe)
    contentment = [0.1, 0.3, 0.45, 0.05, 0.025, 0.025, 0.025, 0.025]
    sad_but_awe_high = [0.0, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6]
    script = Script([(0.6, sad_but_awe_high), (0.6, contentment)])
    result = script.run(LoopSettings(rule="or", max_iterations=2))
    assert result.best_index == 1 and "same-valence" in result.report["best"]["pick"]

    script = Script([(0.6, sad_but_awe_high), (0.6, peaked("fear", 0.9))])
    result = script.run(LoopSettings(rule="or", max_iterations=2))
    assert result.best_index == 0 and result.report["best"]["pick"] == "fallback: highest target probability"


def test_chaining_re_estimates_the_direction_and_conditioning():
    edited = (0.6, peaked("sadness", 0.5))  # accepted under OR, not confident: becomes the image to edit
    script = Script([edited, KEPT_NO_EMOTION, GOOD])
    seen = []
    result = script.run(LoopSettings(rule="or", max_iterations=5), update_conditioning=lambda d: seen.append(d) or len(seen))
    assert result.report["passes"] == 3
    states = [state for _, _, state in script.calls]
    assert [s.base_index for s in states] == [None, 0, 1]
    assert states[0].base_image is SOURCE or torch.equal(states[0].base_image, SOURCE)
    assert states[1].base_latent.flatten()[0] == 0 and torch.equal(states[1].base_image, result.images[0:1])
    assert [s.conditioning for s in states] == [1, 2, 3], "conditioning rebuilt every pass"
    awe, sadness = EMOTIONS.index("awe"), EMOTIONS.index("sadness")
    assert seen[0].vector()[sadness] == pytest.approx(-0.7), "first pass: target - source"
    assert seen[1].vector()[sadness] == pytest.approx(-0.5) and seen[1].vector()[awe] == pytest.approx(1 - 0.5 / 7)
    assert seen[2].vector()[sadness] == pytest.approx(-0.8), "re-estimated from the newest accepted edit"
    assert script.critic_calls == 4, "source scored once, then one call per pass"

    script = Script([edited, KEPT_NO_EMOTION, GOOD])
    script.run(LoopSettings(rule="or", max_iterations=5, chain=False))
    assert all(state.base_index is None for _, _, state in script.calls)


def test_interrupt_mid_loop_raises_and_returns_nothing():
    class Stop(Exception):
        pass

    script = Script([NOTHING] * 10)
    checks = []

    def check():
        checks.append(1)
        if len(checks) == 4:  # after pass 1's generate, before its scoring
            raise Stop

    with pytest.raises(Stop):
        script.run(LoopSettings(max_iterations=10), check_interrupt=check)
    assert len(script.calls) == 2 and script.critic_calls == 2


def test_seed_reproducibility():
    def generate(seeds, denoise, state):
        images = torch.stack([torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(s)) for s in seeds])
        return Candidates(images * denoise)

    def critic(images):
        return torch.softmax(images.mean(dim=(1, 2)) @ torch.ones(3, 8) * torch.arange(8.0), dim=1)

    source = torch.rand(1, SIZE * 4, SIZE * 4, 3, generator=torch.Generator().manual_seed(9))

    def run(seed):
        def gen(seeds, denoise, state):
            out = generate(seeds, denoise, state).images
            return Candidates(torch.nn.functional.interpolate(out.permute(0, 3, 1, 2), size=SIZE * 4).permute(0, 2, 3, 1))

        return run_critic_loop(gen, critic, "awe", LoopSettings(seed=seed, max_iterations=3, candidates=2), source=source)

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.images, b.images) and a.report == b.report
    assert not torch.equal(a.images, c.images)
    seeds = [cand["seed"] for it in a.report["iterations"] for cand in it["candidates"]]
    assert seeds == [5, 6, 7, 8, 9, 10], "distinct seeds per candidate and pass"
    denoises = [it["denoise"] for it in a.report["iterations"]]
    assert all(0.55 <= d <= 0.85 and round(d * 1000) == d * 1000 for d in denoises)


def test_generation_without_source_judges_emotion_only():
    script = Script([(None, peaked("awe", 0.5)), (None, peaked("awe", 0.7))])
    script.similarity = None
    result = run_critic_loop(script.generate, script.critic, "awe", LoopSettings(max_iterations=4))
    assert result.report["passes"] == 2 and result.report["source"] is None
    assert result.judgements[0].ssim is None and "SSIM not judged" in result.judgements[0].why
    assert script.calls[1][2].base_index == 0, "chained from the accepted generation"


@pytest.mark.parametrize("kwargs, words", [
    ({"ssim_low": 0.9, "ssim_high": 0.5}, "ssim_low"),
    ({"confidence": 1.5}, "confidence must be between 0 and 1"),
    ({"ssim_low": -0.1}, "ssim_low"),
    ({"max_iterations": 0}, "max_iterations"),
    ({"candidates": 0}, "candidates"),
    ({"rule": "xor"}, "rule must be one of and, or"),
    ({"denoise_low": 0.9, "denoise_high": 0.2}, "denoise_low"),
    ({"denoise_low": 0.0, "denoise_high": 0.0}, "denoise_high must be above 0"),
    ({"keep_limit": 0}, "keep_limit"),
    ({"direction_from": "source"}, "direction_from must be one of edited, first_edit"),
    ({"pick": "last"}, "pick must be one of best, emoeditor"),
])
def test_bad_settings(kwargs, words):
    with pytest.raises(InvalidInputError, match=words):
        LoopSettings(**kwargs)


def test_bad_generator_output_is_clear():
    def generate(seeds, denoise, state):
        return Candidates(torch.zeros(len(seeds) + 1, SIZE, SIZE, 3))

    with pytest.raises(InvalidInputError, match="returned 2 images for 1 seeds"):
        run_critic_loop(generate, lambda x: torch.full((x.shape[0], 8), 0.125), "awe", LoopSettings())


def test_emoeditor_preset_and_step_modes():
    settings = emoeditor_settings(seed=3)
    assert (settings.rule, settings.ssim_low, settings.ssim_high, settings.confidence) == ("or", 0.5, 0.8, 0.6)
    assert (settings.denoise_low, settings.denoise_high, settings.max_iterations) == (0.7, 0.98, EMOEDITOR_PASS_CAP)
    assert (settings.ssim_open, settings.keep_limit, settings.direction_from, settings.pick) == (
        True, EMOEDITOR_NUM_LOOP, "first_edit", "emoeditor")
    assert EMOEDITOR_NUM_LOOP == 30 and EMOEDITOR_PASS_CAP == 300
    assert EMOEDITOR_PRESET.sampler.steps == 30 and EMOEDITOR_PRESET.sampler.cfg == 1.0
    assert pass_steps(30, 0.75, spread=True) == (30, 0)
    assert pass_steps(30, 0.75, spread=False) == (30, 8)  # runs round(22.5) = 22 steps
    assert pass_steps(4, 0.01, spread=False) == (4, 3), "at least one step"
    capped = EMOEDITOR_PRESET.settings(seed=5, max_iterations=4)
    assert capped == emoeditor_settings(seed=5, max_iterations=4)
    assert (capped.seed, capped.max_iterations, capped.chain) == (5, 4, True)
    assert EMOEDITOR_PRESET.settings(seed=5).max_iterations == EMOEDITOR_PASS_CAP
    assert emoeditor_settings(seed=5, direction_from="edited").direction_from == "edited"


def emoeditor(**changes):
    return emoeditor_settings(seed=0, **changes)


def test_emoeditor_window_is_open():
    script = Script([(0.5, peaked("fear", 0.6)), (0.8, peaked("fear", 0.6)), (0.5000001, peaked("fear", 0.6))])
    result = script.run(emoeditor(keep_limit=2))
    assert [j.accepted for j in result.judgements] == [False, False, True]
    assert result.judgements[0].why.startswith("rejected: SSIM 0.500 not above 0.5")
    assert result.judgements[1].why.startswith("rejected: SSIM 0.800 not below 0.8")
    assert "SSIM 0.500 in (0.5, 0.8)" in result.judgements[2].why
    closed = Script([(0.5, peaked("fear", 0.6))]).run(LoopSettings(rule="or", max_iterations=1))
    assert closed.judgements[0].accepted, "this project's window is closed"


def test_emoeditor_keep_limit_counts_the_source_and_accepted_passes_only():
    rejected, accepted = (0.3, peaked("fear", 0.6)), (0.6, peaked("fear", 0.6))
    script = Script([accepted, rejected, rejected, accepted, rejected, accepted, accepted])
    result = script.run(emoeditor(keep_limit=4))
    assert result.report["stopped"] == "keep_limit" and result.report["passes"] == 6
    assert result.report["kept"] == [0, 3, 5], "with the source: 4 images kept"
    states = [state for _, _, state in script.calls]
    assert [s.base_index for s in states] == [None, 0, 0, 0, 3, 3], "a rejected pass re-edits the last kept image"
    assert EMOEDITOR_PRESET.loop.max_iterations >= 10 * (EMOEDITOR_NUM_LOOP - 1)

    one = Script([rejected] * 3).run(emoeditor(keep_limit=1))
    assert one.report["passes"] == 1, "the first pass always runs (test.py's runs before its while)"

    never = Script([rejected] * 20)
    capped = never.run(emoeditor(max_iterations=7))
    assert capped.report["stopped"] == "max_iterations" and capped.report["passes"] == 7, "the hard cap on passes"


def test_emoeditor_direction_is_the_first_edits_and_re_estimation_is_an_option():
    first = (0.3, peaked("anger", 0.4))  # rejected, yet its estimate steers every later pass
    later = [(0.6, peaked("fear", 0.5)), (0.6, peaked("disgust", 0.5)), GOOD]
    seen = []
    Script([first, *later]).run(emoeditor(), update_conditioning=seen.append)
    sadness, anger = EMOTIONS.index("sadness"), EMOTIONS.index("anger")
    assert seen[0].vector()[sadness] == pytest.approx(-0.7), "first pass: target - source"
    assert all(d.vector()[anger] == pytest.approx(-0.4) for d in seen[1:]), "then target - the first edit's"

    seen = []
    Script([first, *later]).run(emoeditor(direction_from="edited"), update_conditioning=seen.append)
    assert seen[1].vector()[sadness] == pytest.approx(-0.7), "rejected first pass: still the source's"
    assert seen[2].vector()[EMOTIONS.index("fear")] == pytest.approx(-0.5), "re-estimated from the kept edit"


def test_emoeditor_pick():
    # nothing accepted: the source, reported as unchanged
    never = Script([(0.3, peaked("fear", 0.6))] * 3).run(emoeditor(max_iterations=3))
    assert never.best_index is None and torch.equal(never.best_image, SOURCE) and never.best_latent is None
    best = never.report["best"]
    assert best["pick"] == "fallback: nothing accepted; the source" and best["source"] is True
    assert (best["seed"], best["denoise"], best["ssim"], best["top"]) == (None, 0.0, 1.0, "sadness")
    json.dumps(never.report)

    # the last pass's top-1 is the target: the last kept image, even if an earlier one scored higher
    awe_low, awe_high = (0.6, peaked("awe", 0.4)), (0.6, peaked("awe", 0.55))
    result = Script([awe_high, awe_low]).run(emoeditor(keep_limit=3))
    assert result.best_index == 1 and result.report["best"]["pick"].startswith("the last pass's top-1 is the target")
    assert Script([awe_high, awe_low]).run(LoopSettings(rule="or", max_iterations=2)).best_index == 0, \
        "this project's pick: the most confident same-valence image"

    # the last pass is not the target: same-valence best, then target best
    contentment = (0.6, [0.1, 0.3, 0.45, 0.05, 0.025, 0.025, 0.025, 0.025])
    result = Script([contentment, (0.6, peaked("fear", 0.9))]).run(emoeditor(keep_limit=3))
    assert result.best_index == 0 and "same-valence" in result.report["best"]["pick"]
    sad_awe = (0.6, [0.0, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6])
    result = Script([sad_awe, (0.6, peaked("fear", 0.9))]).run(emoeditor(keep_limit=3))
    assert result.best_index == 0 and result.report["best"]["pick"] == "fallback: highest target probability"

    # confident: the loop stops there and that pass is the last
    result = Script([contentment, GOOD, GOOD]).run(emoeditor())
    assert result.report["stopped"] == "confident" and result.best_index == 1
    with pytest.raises(ValueError):
        pick_emoeditor([], [], [])


def test_pick_best_needs_candidates():
    with pytest.raises(ValueError):
        pick_best([])
