"""Metrics: GradCAM, EmoEditor's ESMI against a hand computation, EmoEdit's Emo-A/Emo-S,
and ``score --against``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from emotion_core.cli import main
from emotion_core.critics import EmotionCritic, load_critic
from emotion_core.metrics import emo_a, emo_s, emotion_score, esmi, gradcam, gradcam_layer, prepare_source
from emotion_core.metrics.esmi import esmi_pixels
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.critic_assets import write_test_critics

LN7 = math.log(7.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class PatchMeanCritic(EmotionCritic):
    """A critic whose GradCAM and probabilities are computable by hand.

    Features: a stride-32 conv that averages each 32x32 patch of a 224 image over the 3
    channels -> A [7,7] (its ``gradcam_input_layer``). logits = (GAIN * mean(A), 0, ..., 0), so
    amusement is predicted for any non-black image, d logit / d A = GAIN / 49 everywhere, and
    the GradCAM map is A min-max scaled.
    """

    GAIN = LN7 * 7.0 / 3.0  # mean(A) = 3/7 gives logit ln 7 -> p(amusement) = 7 / (7 + 7) = 0.5

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=32, stride=32, bias=False)
        nn.init.constant_(self.conv.weight, 1.0 / (32 * 32 * 3))

    @property
    def gradcam_input_layer(self):
        return self.conv

    def preprocess(self, pixels):
        return pixels

    def logits(self, inputs):
        mean = self.conv(inputs).mean(dim=(1, 2, 3))
        return torch.stack([self.GAIN * mean] + [torch.zeros_like(mean)] * 7, dim=1)


def _p_amusement(image_mean: float) -> float:
    logit = PatchMeanCritic.GAIN * image_mean
    return math.exp(logit) / (math.exp(logit) + 7.0)


@pytest.fixture
def source():
    image = torch.zeros(1, 224, 224, 3)
    image[:, :, :96] = 1.0  # the three left patch columns
    return image


def test_gradcam_is_the_hand_map(source):
    critic = PatchMeanCritic()
    cam = gradcam(critic, source)[0]
    # A = 1 on patch columns 0..2, 0 elsewhere -> scaled map the same; bilinear upsampling
    # (half-pixel centres) puts 0.5 between pixel 95 (0.516) and 96 (0.484).
    assert cam.shape == (224, 224)
    assert torch.allclose(cam[:, :80], torch.ones(224, 80), atol=1e-5)
    assert torch.allclose(cam[:, 112:], torch.zeros(224, 112), atol=1e-5)
    assert cam[0, 95] == pytest.approx((111.5 - 95) / 32, abs=1e-4)
    assert cam[0, 96] == pytest.approx((111.5 - 96) / 32, abs=1e-4)
    assert ((cam > 0.5).sum(dim=1) == 96).all()


def test_esmi_matches_the_hand_computation(source):
    critic = PatchMeanCritic()
    assert np.array_equal(esmi_pixels(source), (source[0] * 255).numpy().astype(np.uint8)), "224 input kept as is"
    reference = prepare_source(critic, source)
    assert reference.distribution[0] == pytest.approx(0.5, abs=1e-4)
    assert int(reference.region.sum()) == 96 * 224

    half = 128 / 255  # 0.5 quantised to 8 bits (round(127.5) = 128)
    outside = source.clone()
    outside[:, :, 96:] = 0.5  # change only outside the emotion region, image brighter
    inside = source.clone()
    inside[:, :, :96] = 0.5  # change only inside, image darker
    both = torch.full_like(source, 0.5)
    scores = esmi(critic, reference, torch.cat([outside, inside, both]), "amusement")

    kl_source = -math.log(0.5)
    expected = []
    for mean, inside_change, outside_change in (
        ((96 + 128 * half) / 224, 0.0, 128.0 * 128),
        ((96 * half) / 224, 127.0 * 96, 0.0),
        (half, 127.0 * 96, 128.0 * 128),
    ):
        s_emo = max(0.0, kl_source + math.log(_p_amusement(mean))) / (kl_source + 1e-10)
        # per row: L_emo and L_full averaged over the same 224*224*3 values, so the ratio is sum/sum
        s_str = inside_change / (inside_change + outside_change + 1e-10)
        expected.append((s_emo, s_str, 100 * (0.5 * s_str + 0.5 * s_emo)))
    for i, (s_emo, s_str, value) in enumerate(expected):
        assert scores.emotion[i].item() == pytest.approx(s_emo, abs=1e-4)
        assert scores.structure[i].item() == pytest.approx(s_str, abs=1e-5)
        assert scores.esmi[i].item() == pytest.approx(value, abs=1e-2)
    assert scores.emotion[0] > 0 and scores.emotion[1] == 0, "brighter raises p(amusement), darker lowers it"
    assert scores.structure[0] == 0 and scores.structure[1] == pytest.approx(1.0)
    assert esmi(critic, source, source, "amusement").esmi.item() == 0.0, "an unchanged image scores 0"


def test_emotion_score_and_emoedit_metrics():
    source = torch.tensor([0.25] + [0.75 / 7] * 7)
    edits = torch.tensor([[0.5] + [0.5 / 7] * 7, [0.1] + [0.9 / 7] * 7])
    assert emotion_score(source, edits, "amusement").tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    assert emo_a(edits, "amusement").tolist() == [1.0, 0.0], "top-1 (0.5 vs 0.9/7), not a 0.5 threshold"
    assert emo_s(edits, source, "amusement").tolist() == pytest.approx([0.25, -0.15], abs=1e-6)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_test_critics(tmp_path_factory.mktemp("critics"), TEST_FILES)


def test_gradcam_layers_of_the_real_critics(files):
    image = torch.rand(1, 48, 40, 3, generator=torch.Generator().manual_seed(0))
    for role in ("critic_emoeditor", "critic_clip_b32", "critic_emoedit"):
        critic = load_critic(files[role])
        layer = gradcam_layer(critic)
        if role == "critic_emoeditor":
            assert layer is critic.model.layer4[-1]
        else:
            assert isinstance(layer, nn.LayerNorm), "a ViT's last block input (its ln_1)"
        cam = gradcam(critic, image)
        assert cam.max() == pytest.approx(1.0, abs=1e-3) and cam.min() == 0.0, role


def test_emo_a_is_top1_argmax_order():
    distribution = torch.zeros(1, 8)
    distribution[0, EMOTIONS.index("fear")] = 1.0
    assert emo_a(distribution, "Fear").item() == 1.0


def _save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_score_against_source(files, tmp_path, capsys):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    src = _save(tmp_path / "src.png", source)
    same = _save(tmp_path / "same.png", source)
    other = _save(tmp_path / "other.png", rng.integers(0, 256, size=(48, 80, 3), dtype=np.uint8))
    code = main(["score", same, other, "--critic", str(files["critic_emoeditor"]), "--against", src,
                 "--target", "awe", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    for row in rows:
        assert {"ssim", "ssim_emoeditor", "esmi", "emo_a", "emo_s", "target_probability"} <= set(row)
        assert row["emo_a"] == float(row["top"] == "awe")
    assert rows[0]["ssim"] == pytest.approx(1.0) and rows[0]["ssim_emoeditor"] == pytest.approx(1.0)
    assert rows[0]["esmi"] == 0.0 and rows[0]["emo_s"] == 0.0
    assert rows[1]["ssim"] < 0.5


def test_score_against_needs_a_target(files, tmp_path, capsys):
    image = _save(tmp_path / "a.png", np.zeros((16, 16, 3), dtype=np.uint8))
    assert main(["score", image, "--critic", str(files["critic_emoeditor"]), "--against", image]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["score", image, "--critic", str(files["critic_emoeditor"]), "--target", "joy"]) == 2
