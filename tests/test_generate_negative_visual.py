"""``generate --negative-visual-prompt``: three-branch guidance on the tiny diffusers pipeline,
one UNet call per step with the negative visual branch; s_v = 0 matches plain CFG."""

import json

import numpy as np
import pytest
from PIL import Image

from emotion_core.cli import main
from emotion_core.report import PNG_METADATA_KEY


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_sd_pipeline):
    folder = tmp_path_factory.mktemp("tiny_sd_nv")
    written = tiny_sd_pipeline
    rng = np.random.default_rng(1)
    for name in ("awe", "fear"):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(folder / f"{name}.png")
    return written, folder


def _argv(assets, out, *extra):
    written, folder = assets
    return ["generate", "--model", written["pipeline"], "--emotion", "awe", "--prompt", "a mountain at dawn",
            "--steps", "3", "--cfg", "4", "--visual-prompt", folder / "awe.png", "--adapter", written["adapter_base"],
            "--image-encoder", written["image_encoder"], "--out", out, *extra]


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16), json.loads(image.text[PNG_METADATA_KEY])


def test_three_branches_in_one_call_and_zero_scale_is_cfg(assets, tmp_path, monkeypatch, capsys):
    from emotion_core.visual_prompt import diffusers_unet

    seen = []
    original = diffusers_unet.ImagePromptProcessor.__call__

    def spy(self, attn, hidden_states, *args, **kwargs):
        seen.append((hidden_states.shape[0], tuple(self.options["cond_or_uncond"])))
        return original(self, attn, hidden_states, *args, **kwargs)

    monkeypatch.setattr(diffusers_unet.ImagePromptProcessor, "__call__", spy)
    fear = assets[1] / "fear.png"
    assert main([str(a) for a in _argv(assets, tmp_path / "plain.png")]) == 0
    plain_calls, seen[:] = len(seen), []
    assert main([str(a) for a in _argv(assets, tmp_path / "zero.png", "--negative-visual-prompt", fear,
                                       "--visual-guidance", "0")]) == 0
    assert len(seen) == plain_calls, "still one UNet call per step"
    assert {chunks for _, chunks in seen} == {(0, 1, 2)} and {batch for batch, _ in seen} == {3}
    assert main([str(a) for a in _argv(assets, tmp_path / "guided.png", "--negative-visual-prompt", fear,
                                       "--visual-guidance", "3", "--visual-guidance-schedule", "cosine_decay")]) == 0
    capsys.readouterr()
    plain, _ = _pixels(tmp_path / "plain.png")
    zero, _ = _pixels(tmp_path / "zero.png")
    guided, meta = _pixels(tmp_path / "guided.png")
    assert np.abs(plain - zero).max() <= 1, "s_v = 0 is classifier-free guidance (up to batching round-off)"
    assert np.abs(plain - guided).max() > 1
    assert meta["negative_visual_prompts"] == ["fear.png"] and meta["visual_guidance"] == 3.0
    assert meta["visual_guidance_schedule"] == "cosine_decay"


def test_negative_visual_prompt_needs_visual_prompt(assets, tmp_path, capsys):
    written, folder = assets
    code = main(["generate", "--model", str(written["pipeline"]), "--emotion", "awe", "--prompt", "x", "--out",
                 str(tmp_path / "o.png"), "--negative-visual-prompt", str(folder / "fear.png")])
    assert code == 2 and "needs --visual-prompt" in capsys.readouterr().err
    code = main([str(a) for a in _argv(assets, tmp_path / "o.png", "--negative-visual-prompt", folder / "nope.png")])
    assert code == 2 and "not found" in capsys.readouterr().err
    code = main([str(a) for a in _argv(assets, tmp_path / "o.png", "--negative-visual-prompt", folder / "fear.png",
                                       "--visual-guidance", "99")])
    assert code == 2 and "visual guidance scale" in capsys.readouterr().err
