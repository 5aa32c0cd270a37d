"""``emotion-director edit --emoeditor``: EmoEditor's files as a user has them (the released
model_ip2p.pt directly, and what `convert` writes from it), the options that are not
upstream's defaults, determinism, and bad input (exit 2 with one line). Parity with
upstream's procedure itself: tests/test_emoeditor_parity.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from emotion_core.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _edit(files, out, *extra, unet=None, vae=None, target="disgust"):
    unet = unet or files["ip2p"]
    return main(["edit", str(files["image"]), "--target", target, "--emoeditor", "--unet", str(unet), "--vae",
                 str(vae or unet), "--encoder", str(files["encoder"]), "--critic", str(files["predictor"]),
                 "--out", str(out), "--steps", "3", "--json", *map(str, extra)])


def _result(capsys):
    return json.loads(capsys.readouterr().out)


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image)


def test_options_that_are_not_upstreams_defaults(tiny_emoeditor_files, tmp_path, capsys):
    files = tiny_emoeditor_files
    plain = tmp_path / "plain.json"
    assert _edit(files, tmp_path / "a.png", "--max-passes", "3", "--max-iterations", "30", "--report", plain) == 0
    first = _result(capsys)
    assert (first["passes"], first["stopped"], first["resolution"]) == (3, "max_iterations", "224")
    assert _pixels(tmp_path / "a.png").shape == (224, 224, 3)
    assert _edit(files, tmp_path / "b.png", "--max-passes", "3", "--max-iterations", "30") == 0
    assert _result(capsys)["best"] == first["best"]
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "b.png")), "same seed, same image"

    report = tmp_path / "r.json"
    assert _edit(files, tmp_path / "c.png", "--max-passes", "3", "--reestimate-direction", "--report", report) == 0
    capsys.readouterr()
    settings = json.loads(report.read_text())["settings"]
    assert (settings["direction_from"], settings["keep_limit"], settings["max_iterations"]) == ("edited", 30, 3)

    assert _edit(files, tmp_path / "d.png", "--max-passes", "1", "--resolution", "native") == 0
    assert _result(capsys)["resolution"] == "native"
    assert _pixels(tmp_path / "d.png").shape == (256, 296, 3), "the source's size on the VAE's 8 px grid"

    guided = tmp_path / "guided.json"
    assert _edit(files, tmp_path / "e.png", "--max-passes", "1", "--image-guidance", "1.5", "--cfg", "3",
                 "--report", guided) == 0
    capsys.readouterr()
    first_pass = [json.loads(path.read_text())["iterations"][0]["candidates"][0] for path in (plain, guided)]
    assert first_pass[0]["denoise"] == first_pass[1]["denoise"], "same seed, same noise level"
    assert first_pass[0]["distribution"] != first_pass[1]["distribution"], "another edit"


def test_image_guidance_is_diffusers_three_branch_formula(tiny_emoeditor_files):
    from emotion_core.pipeline.instruct_pix2pix import ImageGuidance, edit_pass
    from emotion_core.pipeline.instruct_pix2pix_files import load_instruct_pix2pix

    model = load_instruct_pix2pix(tiny_emoeditor_files["ip2p"], tiny_emoeditor_files["ip2p"])
    image = tiny_emoeditor_files["source"].permute(0, 2, 3, 1)
    tokens = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(0))

    def run(guidance):
        return edit_pass(model, tokens, image, image, noise_level=800, steps=2,
                         generator=torch.Generator().manual_seed(4), guidance=guidance)

    plain = run(None)
    # instruction scale 1 and image scale 1: uncond + (text - image) + (image - uncond) = text, the plain pass
    same = run(ImageGuidance(1.0, 1.0, torch.zeros(1, 77, 768)))
    assert torch.allclose(plain, same, atol=1e-5)
    assert not torch.allclose(plain, run(ImageGuidance(3.0, 1.5, torch.zeros(1, 77, 768))), atol=1e-3)


@pytest.mark.slow
def test_the_released_files_and_their_converted_twins_edit_alike(emoeditor_release_files, tiny_emoeditor_files,
                                                                 tmp_path, capsys):
    """The user's two ways: model_ip2p.pt as --unet and --vae, or convert's UNet + VAE files."""
    release = emoeditor_release_files
    ip2p = release["emoeditor_release_ip2p"]
    unet, vae = tmp_path / "unet.safetensors", tmp_path / "vae.safetensors"
    assert main(["convert", str(ip2p), str(unet), "--vae-out", str(vae), "--json"]) == 0
    capsys.readouterr()
    files = {**tiny_emoeditor_files, "encoder": release["emoeditor_release_encoder"],
             "predictor": release["emoeditor_release_predictor"]}
    assert _edit(files, tmp_path / "released.png", "--max-passes", "1", "--steps", "2", unet=ip2p) == 0
    released = _result(capsys)
    assert _edit(files, tmp_path / "converted.png", "--max-passes", "1", "--steps", "2", unet=unet, vae=vae) == 0
    assert _result(capsys)["distribution"] == pytest.approx(released["distribution"], abs=1e-5)
    difference = np.abs(_pixels(tmp_path / "released.png").astype(int) - _pixels(tmp_path / "converted.png"))
    assert difference.max() <= 1


@pytest.mark.parametrize("extra, words", [
    (["--max-passes", "0"], "--max-passes: expected a positive integer"),
    (["--steps", "701"], "--steps must be at most 700"),
    (["--confidence", "0.9"], "--confidence does not apply with --emoeditor"),
    (["--ssim-min", "0.2"], "--ssim-min does not apply with --emoeditor"),
    (["--prompt", "a cat"], "--prompt does not apply with --emoeditor"),
    (["--cfg", "3"], "--cfg applies with --emoeditor only together with --image-guidance"),
    (["--image-guidance", "0"], "--image-guidance: expected a positive number"),
    (["--resolution", "512"], "--resolution: invalid choice"),
])
def test_bad_options(tiny_emoeditor_files, tmp_path, capsys, extra, words):
    assert _edit(tiny_emoeditor_files, tmp_path / "x.png", *extra) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_bad_files(tiny_emoeditor_files, critic_loop_files, tmp_path, capsys):
    files = tiny_emoeditor_files
    assert _edit(files, tmp_path / "x.png", unet=tmp_path / "missing.pt") == 2
    assert "model file not found" in capsys.readouterr().err

    # an SD1.5 text-to-image checkpoint: a 4-channel UNet
    from emotion_core.testing.ldm_export import write_original_checkpoint

    sd15 = write_original_checkpoint(critic_loop_files["pipeline"], tmp_path / "sd15.safetensors")
    assert _edit(files, tmp_path / "x.png", unet=sd15) == 2
    err = capsys.readouterr().err
    assert "reads 4 latent channels: a text-to-image UNet, not InstructPix2Pix" in err

    # the predictor's file is no UNet, and the encoder's is no critic
    assert _edit(files, tmp_path / "x.png", unet=files["predictor"]) == 2
    assert "emo_predictor.pt: not an InstructPix2Pix UNet layout this project reads" in capsys.readouterr().err
    assert main(["edit", str(files["image"]), "--target", "awe", "--emoeditor", "--unet", str(files["ip2p"]),
                 "--vae", str(files["ip2p"]), "--encoder", str(files["predictor"]), "--critic",
                 str(files["predictor"]), "--out", str(tmp_path / "x.png")]) == 2
    assert "not an EmoEditor emotion encoder" in capsys.readouterr().err


def test_emoeditor_options_need_emoeditor(critic_loop_files, tmp_path, capsys):
    base = ["edit", str(critic_loop_files["image"]), "--target", "awe", "--critic", str(critic_loop_files["critic"]),
            "--out", str(tmp_path / "x.png")]
    assert main([*base, "--model", str(critic_loop_files["pipeline"]), "--unet", "u.pt"]) == 2
    assert "--unet needs --emoeditor" in capsys.readouterr().err
    assert main(base) == 2
    assert "edit needs --model" in capsys.readouterr().err
    assert main([*base, "--emoeditor", "--unet", "u.pt"]) == 2
    assert "--emoeditor needs --vae, --encoder" in capsys.readouterr().err
