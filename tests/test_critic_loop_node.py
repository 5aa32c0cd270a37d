"""Emotion Critic Loop node end-to-end on the ComfyUI stand-ins: a tiny latent model and
VAE, a real tiny critic file; progress, interruption, bad input, EmoEditor mode.
(With COMFYUI_PATH, tests/test_critic_loop_comfyui.py runs it on real ComfyUI instead.)"""

from __future__ import annotations

import json
import os

import pytest
import torch
from comfy_standins.tiny_models import TinyComfyClip, TinyModelPatcher, TinyUnet, TinyVae

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("COMFYUI_PATH")),
                       reason="stand-in sampling; the real-ComfyUI twin is test_critic_loop_comfyui.py"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def conditioning(value):
    return [[torch.full((1, 3, 8), value), {}]]


@pytest.fixture(scope="module")
def node(pack, comfy_models_dir):
    from emotion_director_pack.nodes.critic_loop import EmotionCriticLoop

    return EmotionCriticLoop


@pytest.fixture(scope="module")
def critic(comfy_models_dir):
    from emotion_core.critics import load_critic
    from emotion_core.testing.assets import TEST_FILES

    return load_critic(comfy_models_dir / TEST_FILES["critic_clip_b32"])


def source(seed=0, size=32):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def run(node, critic, **overrides):
    kwargs = dict(model=TinyModelPatcher(), positive=conditioning(0.5), negative=conditioning(0.0), vae=TinyVae(),
                  critic=critic, target_emotion="awe", seed=1, steps=4, cfg=2.0, sampler_name="euler",
                  scheduler="normal", denoise_min=0.5, denoise_max=0.8, ssim_min=0.0, ssim_max=1.0, confidence=0.99,
                  rule="and", max_iterations=3, candidates_per_iteration=2, source_image=source())
    kwargs.update(overrides)
    return node.execute(**kwargs)


def test_schema(node):
    schema = node.GET_SCHEMA()
    assert (schema.node_id, schema.display_name) == ("EmotionCriticLoop", "Emotion Critic Loop")
    assert [o.io_type for o in schema.outputs] == ["IMAGE", "LATENT", "IMAGE", "STRING"]


def test_edit_runs_every_pass_and_reports(node, critic):
    import comfy.utils

    updates = []
    comfy.utils.PROGRESS_BAR_HOOK = lambda value, total, preview, node_id=None: updates.append((value, total))
    try:
        vae = TinyVae()
        model = TinyModelPatcher()
        out = run(node, critic, vae=vae, model=model)
    finally:
        comfy.utils.PROGRESS_BAR_HOOK = None
    best, best_latent, candidates, text = out.args
    report = json.loads(text)
    assert vae.encoded == 1, "source encoded once"
    assert report["passes"] == 3 and report["stopped"] == "max_iterations", "confidence 0.99 is never met"
    assert candidates.shape == (6, 32, 32, 3) and best.shape == (1, 32, 32, 3)
    assert best_latent["samples"].shape == (1, 4, 4, 4)
    assert torch.equal(best, candidates[report["best"]["index"]: report["best"]["index"] + 1])
    for entry in report["iterations"]:
        assert len(entry["candidates"]) == 2 and 0.5 <= entry["denoise"] <= 0.8
        for cand in entry["candidates"]:
            assert set(cand) >= {"seed", "ssim", "distribution", "accepted", "why"}
    # steps are the full schedule: a pass at denoise d runs round(4 d) steps, CFG doubles the batch
    expected_calls = sum(2 * 2 * max(1, round(4 * e["denoise"])) for e in report["iterations"])
    assert model.model.calls == expected_calls
    assert updates[-1] == (12, 12), "one bar over max_iterations * steps, completed at the end"
    assert [v for v, _ in updates] == sorted(v for v, _ in updates)
    assert [c["iteration"] for c in out.ui["emotion_loop"]] == [0, 1, 2]
    assert out.ui["images"][0]["shape"] == [32, 32, 3]
    (summary,) = out.ui["emotion_loop_summary"]
    assert summary["confidence"] == 0.99 and summary["passes"] == 3 and len(summary["ssim_window"]) == 2


def test_same_seed_same_run(node, critic):
    a, b = (run(node, critic, max_iterations=2, candidates_per_iteration=1) for _ in range(2))
    assert torch.equal(a.args[2], b.args[2]) and a.args[3] == b.args[3]
    c = run(node, critic, seed=2, max_iterations=2, candidates_per_iteration=1)
    assert not torch.equal(a.args[2], c.args[2])


def test_generation_from_a_latent(node, critic):
    latent = {"samples": torch.zeros(1, 4, 4, 6)}
    out = run(node, critic, source_image=None, latent=latent, confidence=0.0, denoise_min=1.0, denoise_max=1.0)
    report = json.loads(out.args[3])
    assert out.args[0].shape == (1, 32, 48, 3) and report["source"] is None
    assert latent["samples"].abs().sum() == 0, "input latent untouched"


def test_accept_and_stop_on_first_pass(node, critic):
    out = run(node, critic, confidence=0.0, rule="or")
    report = json.loads(out.args[3])
    assert report["passes"] == 1 and report["stopped"] == "confident"


def test_clip_reconditioning_follows_the_direction(node, critic, monkeypatch):
    clip = TinyComfyClip()
    seen = []
    original = TinyUnet.apply_model

    def spy(self, x, t, c_crossattn=None, **kwargs):
        seen.append(c_crossattn.clone())
        return original(self, x, t, c_crossattn=c_crossattn[..., :8], **kwargs)

    monkeypatch.setattr(TinyUnet, "apply_model", spy)
    text = [[torch.zeros(1, 77, 32), {}]]  # TinyComfyClip's default width
    run(node, critic, clip=clip, positive=text, negative=text, cfg=1.0, candidates_per_iteration=1)
    assert not torch.equal(seen[0], text[0][0]), "positive steered toward the target"


def test_interrupt_inside_a_pass_raises_cleanly(node, critic, monkeypatch):
    import comfy.model_management as mm

    calls = []
    original = TinyUnet.apply_model

    def interrupting(self, x, t, c_crossattn=None, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            mm.interrupt_current_processing(True)
        return original(self, x, t, c_crossattn=c_crossattn, **kwargs)

    monkeypatch.setattr(TinyUnet, "apply_model", interrupting)
    with pytest.raises(mm.InterruptProcessingException):
        run(node, critic, cfg=1.0, candidates_per_iteration=1, max_iterations=10)
    assert len(calls) < 10 and not mm.processing_interrupted()


@pytest.mark.parametrize("overrides, words", [
    ({"ssim_min": 0.9, "ssim_max": 0.2}, "ssim_low"),
    ({"confidence": 1.2}, "confidence must be between 0.0 and 1.0"),
    ({"ssim_max": -0.1}, "ssim_max must be between 0.0 and 1.0"),
    ({"max_iterations": 0}, "max_iterations"),
    ({"source_image": None}, "neither is connected"),
    ({"source_image": torch.rand(1, 5, 12, 3)}, "source_image is 12x5 pixels; at least 8x8 are needed"),
    ({"latent": {"samples": torch.zeros(1, 4, 5, 4)}}, "source_image is 32x32 but the latent decodes to 40x32"),
    ({"mode": "EmoEditor"}, "emotion encoder"),
])
def test_bad_input(node, critic, overrides, words):
    from emotion_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=words):
        run(node, critic, **overrides)


def test_emoeditor_mode_uses_the_paper_settings(node, critic, comfy_models_dir):
    from emotion_core.testing.assets import TEST_FILES

    model = TinyModelPatcher()
    encoder = TEST_FILES["emotion_encoder"].split("/", 1)[1]
    positive = [[torch.zeros(1, 77, 768), {"concat_latent_image": torch.zeros(1, 4, 4, 4)}]]
    seen = []
    original = TinyUnet.apply_model

    def spy(self, x, t, c_crossattn=None, **kwargs):
        seen.append(c_crossattn)
        return original(self, x, t, c_crossattn=c_crossattn[..., :8], **kwargs)

    TinyUnet.apply_model = spy
    try:
        out = run(node, critic, model=model, positive=positive, mode="EmoEditor", emotion_encoder=encoder,
                  max_iterations=2, cfg=7.0, steps=5, candidates_per_iteration=3)
    finally:
        TinyUnet.apply_model = original
    report = json.loads(out.args[3])
    settings = report["settings"]
    assert (settings["rule"], settings["ssim_low"], settings["ssim_high"], settings["confidence"]) == ("or", 0.5, 0.8, 0.6)
    assert settings["candidates"] == 1 and settings["max_iterations"] == 2
    assert all(0.7 <= e["denoise"] <= 0.98 for e in report["iterations"])
    assert len(seen) == 30 * report["passes"], "30 steps per pass, no CFG branch"
    assert seen[0].shape == (1, 77, 768) and not torch.equal(seen[0], positive[0][0]), "emotion-encoder tokens"


def _never_target():
    """A critic whose top-1 is always sadness: with the scene lost too, no pass is accepted."""
    from emotion_core.critics.base import EmotionCritic
    from emotion_core.taxonomy import EMOTIONS

    class NeverTarget(EmotionCritic):
        def __init__(self):
            super().__init__(EMOTIONS)
            self.scale = torch.nn.Parameter(torch.ones(1))

        def preprocess(self, pixels):
            return pixels

        def logits(self, inputs):
            return torch.tensor([[3.0 if e == "sadness" else 0.0 for e in EMOTIONS]]).expand(inputs.shape[0], -1)

    return NeverTarget().eval()


def _emoeditor_run(node, critic, monkeypatch, **overrides):
    import comfy.sample

    from emotion_core.testing.assets import TEST_FILES

    seen = []
    original = comfy.sample.sample

    def spy(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kwargs):
        seen.append((positive, negative, latent_image))
        return original(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kwargs)

    monkeypatch.setattr(comfy.sample, "sample", spy)
    original_apply = TinyUnet.apply_model  # the tiny model reads 8-wide tokens: the encoder's 768 are cut
    monkeypatch.setattr(TinyUnet, "apply_model",
                        lambda self, x, t, c_crossattn=None, **kw: original_apply(self, x, t, c_crossattn=c_crossattn[..., :8], **kw))
    concat = torch.zeros(1, 4, 4, 4)  # InstructPixToPixConditioning's, at the source's own size (32 px)
    kwargs = dict(model=TinyModelPatcher(), positive=[[torch.zeros(1, 77, 768), {"concat_latent_image": concat}]],
                  negative=[[torch.zeros(1, 77, 768), {"concat_latent_image": concat}]], mode="EmoEditor",
                  emotion_encoder=TEST_FILES["emotion_encoder"].split("/", 1)[1], max_iterations=3,
                  latent={"samples": torch.zeros(1, 4, 4, 4)})
    kwargs.update(overrides)
    return run(node, critic, **kwargs), seen


def test_emoeditor_mode_edits_at_224_like_upstream(node, critic, comfy_models_dir, monkeypatch):
    out, seen = _emoeditor_run(node, critic, monkeypatch, max_iterations=2)
    best, best_latent, candidates, text = out.args
    assert candidates.shape[1:] == (224, 224, 3) and best.shape == (1, 224, 224, 3)
    assert best_latent["samples"].shape == (1, 4, 28, 28)
    positive, negative, start = seen[0]
    assert start.shape == (1, 4, 28, 28) and start.abs().sum() > 0, "the 224 px source's encoding, not the zero latent"
    for conditioning in (positive, negative):
        assert torch.equal(conditioning[0][1]["concat_latent_image"], start), "the concat image is the 224 px source's"
    report = json.loads(text)
    assert report["settings"]["keep_limit"] == 30 and report["settings"]["direction_from"] == "first_edit"


def test_emoeditor_mode_returns_the_source_when_nothing_is_accepted(node, comfy_models_dir, monkeypatch):
    from emotion_core.images import pil_resize

    source = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(3))
    out, seen = _emoeditor_run(node, _never_target(), monkeypatch, source_image=source)
    best, best_latent, candidates, text = out.args
    report = json.loads(text)
    assert report["passes"] == 3 and not any(c["accepted"] for it in report["iterations"] for c in it["candidates"])
    assert report["best"]["pick"] == "fallback: nothing accepted; the source" and report["best"]["index"] is None
    assert torch.equal(best, pil_resize(source, 224, 224)), "the source, as test.py resized it"
    assert torch.equal(best_latent["samples"], seen[0][2]), "and its latent"
    assert candidates.shape[0] == 3

    custom, _ = _emoeditor_run(node, _never_target(), monkeypatch, source_image=source, mode="custom", latent=None,
                               ssim_min=0.99, ssim_max=1.0)
    assert custom.args[0].shape == (1, 40, 48, 3), "custom mode keeps the source's size (on the 8 px grid)"
    assert json.loads(custom.args[3])["best"]["index"] is not None, "and returns a candidate"
