import pytest
import torch
from helpers.emoeditor_reference import reference_cal_ssim

from emotion_core.errors import InvalidInputError
from emotion_core.ssim import ssim


def images(seed, n=1, size=64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, size, size, 3, generator=g)


def test_identical_images_score_one():
    a = images(0)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(a, a, mode="emoeditor").item() == pytest.approx(1.0, abs=1e-5)


def test_emoeditor_mode_is_emoeditors_cal_ssim():
    a, b = images(1, size=224), images(2, size=224)
    b = 0.6 * a + 0.4 * b  # related images, SSIM well inside (0, 1)
    got = ssim(a, b, mode="emoeditor")
    want = reference_cal_ssim(a, b)
    assert got.item() == pytest.approx(want, abs=1e-6)
    assert 0.2 < got.item() < 0.95
    # levels k/255 (what an 8-bit file decodes to) are truncated as test.py's .byte() does
    levels = torch.arange(256, dtype=torch.float32) / 255
    grid = levels.repeat(224 * 224 // 256 + 1)[: 224 * 224].view(1, 224, 224, 1).expand(1, 224, 224, 3)
    assert ssim(grid, grid.flip(1), mode="emoeditor").item() == pytest.approx(reference_cal_ssim(grid, grid.flip(1)),
                                                                               abs=1e-6)


def test_reference_matches_opencv_and_skimage():
    cv2 = pytest.importorskip("cv2")
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a, b = images(3, size=224), images(4, size=224)
    b = 0.5 * a + 0.5 * b
    gray = [cv2.cvtColor((x[0] * 255).clamp(0, 255).to(torch.uint8).numpy(), cv2.COLOR_RGB2GRAY) for x in (a, b)]
    want = skimage_metrics.structural_similarity(gray[0], gray[1], win_size=51)
    assert reference_cal_ssim(a, b) == pytest.approx(want, abs=1e-9)


def test_source_broadcasts_over_candidates():
    src = images(3)
    cands = torch.cat([src, images(4), 1 - src])
    scores = ssim(src, cands)
    assert scores.shape == (3,)
    assert scores[0] > scores[1] and scores[0] > scores[2]


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="mode"):
        ssim(images(0), images(0), mode="fast")
    with pytest.raises(InvalidInputError, match="same size"):
        ssim(images(0, size=64), images(0, size=32))
    with pytest.raises(InvalidInputError, match="NaN"):
        ssim(images(0), torch.full((1, 64, 64, 3), float("nan")))
    with pytest.raises(InvalidInputError, match="must be 1 or match"):
        ssim(images(0, n=2), images(0, n=3))
