import pytest
import torch
import torch.nn.functional as F

from emotion_core.errors import InvalidInputError
from emotion_core.ssim import ssim


def reference_ssim_uniform(x, y, win, data_range):
    """Textbook SSIM with a uniform window over valid positions (skimage's defaults, population covariance)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    pool = lambda t: F.avg_pool2d(t, win, stride=1)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def images(seed, n=1, size=64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, size, size, 3, generator=g)


def test_identical_images_score_one():
    a = images(0)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(a, a, mode="emoeditor").item() == pytest.approx(1.0, abs=1e-5)


def test_emoeditor_mode_matches_reference_computation():
    a, b = images(1, size=224), images(2, size=224)
    b = 0.6 * a + 0.4 * b  # related images, SSIM well inside (0, 1)
    got = ssim(a, b, mode="emoeditor")
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    ga = ((a.permute(0, 3, 1, 2) * luma).sum(1, keepdim=True) * 255).round()
    gb = ((b.permute(0, 3, 1, 2) * luma).sum(1, keepdim=True) * 255).round()
    want = reference_ssim_uniform(ga.double(), gb.double(), 51, 255.0)
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    assert 0.2 < got.item() < 0.95


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
