"""``edit --emoeditor`` against a reference implementation of EmoEditor's released procedure
(tests/helpers/emoeditor_reference.py: test.py's loop and ip2p.py's InstructPix2Pix.forward
with diffusers' DDIMScheduler, written from reading upstream's code): the same tiny weights,
image and seed give the same passes (noise levels, predictions, SSIM, accepted or not), the
same kept images and final pick, and the same images within float tolerance; the CLI writes
that pick.

The weights are tiny files in upstream's released layouts (``tiny_emoeditor_files``,
tests/helpers/emoeditor_tiny.py), whose predictor's top-1 changes from edit to edit. The
run has accepted and rejected passes, and is checked to.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.emoeditor_reference import (
    CLASSES,
    ReferenceInstructPix2Pix,
    reference_test_py,
)
from helpers.emoeditor_tiny import tiny_unet_and_vae
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TARGET, SEED, STEPS, NUM_LOOP = "disgust", 11, 6, 4
IMAGE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference(tiny_emoeditor_files):
    """test.py's procedure, its modules built and loaded the way upstream loads the files."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import load_file
    from torchvision.models import resnet18

    release = tiny_emoeditor_files
    unet, vae = tiny_unet_and_vae()  # same architecture; the file's (fp16) weights go into float32 modules
    state = torch.load(release["ip2p"], weights_only=True)
    assert isinstance(unet, UNet2DConditionModel) and isinstance(vae, AutoencoderKL)
    unet.load_state_dict({k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")})
    vae.load_state_dict({k[len("auto_encoder."):]: v for k, v in state.items() if k.startswith("auto_encoder.")})
    predictor = resnet18(weights=None)
    predictor.fc = torch.nn.Linear(512, 8)
    predictor.load_state_dict(torch.load(release["predictor"], weights_only=True))
    encoder = torch.nn.Sequential(torch.nn.Linear(8, 256), torch.nn.ReLU(), torch.nn.Linear(256, 512),
                                  torch.nn.ReLU(), torch.nn.Linear(512, 768), torch.nn.ReLU(),
                                  torch.nn.Linear(768, 77 * 768))
    encoder.load_state_dict({k[len("fc."):]: v.float() for k, v in load_file(release["encoder"]).items()})
    ip2p = ReferenceInstructPix2Pix(unet, vae)
    run = reference_test_py(ip2p, lambda d: encoder(d).view(-1, 77, 768), predictor.eval(), release["source"],
                            TARGET, SEED, STEPS, NUM_LOOP)
    run.noise_levels = ip2p.noise_levels
    return run


@pytest.fixture(scope="module")
def project(tiny_emoeditor_files):
    """The project's EmoEditor path on the same files, as ``edit --emoeditor`` runs it."""
    release = tiny_emoeditor_files
    from emotion_core.critic_loop import emoeditor_settings
    from emotion_core.critics import load_critic
    from emotion_core.direction import make_direction
    from emotion_core.emotion_encoder import load_emotion_encoder
    from emotion_core.images import load_image, pil_resize
    from emotion_core.pipeline.critic_loop import run_instruct_pix2pix_loop
    from emotion_core.pipeline.instruct_pix2pix_files import load_instruct_pix2pix

    model = load_instruct_pix2pix(release["ip2p"], release["ip2p"])
    source = pil_resize(load_image(release["image"]), 224, 224)
    return run_instruct_pix2pix_loop(model, load_emotion_encoder(release["encoder"]), load_critic(release["predictor"]),
                                     make_direction(TARGET), emoeditor_settings(SEED, keep_limit=NUM_LOOP), source,
                                     steps=STEPS)


def _passes(report):
    return [c for it in report["iterations"] for c in it["candidates"]]


def test_same_source(tiny_emoeditor_files):
    from emotion_core.images import load_image, pil_resize

    release = tiny_emoeditor_files
    assert torch.equal(pil_resize(load_image(release["image"]), 224, 224)[0], release["source"][0].permute(1, 2, 0))


def test_same_pass_decisions(reference, project):
    passes = _passes(project.report)
    assert [round(c["denoise"] * 1000) for c in passes] == reference.noise_levels, "T drawn in upstream's order"
    assert [c["top"] for c in passes] == reference.labels
    assert [c["accepted"] for c in passes] == reference.accepted
    assert [c["ssim"] for c in passes] == pytest.approx(reference.ssims, abs=1e-4)  # an 8-bit level may flip
    print(f"passes: T {reference.noise_levels}, top-1 {reference.labels}, accepted {reference.accepted}, "
          f"kept {reference.kept}, final {'the source' if reference.final_is_source else 'an edit'}")
    assert True in reference.accepted and False in reference.accepted, "the run must have both kinds of pass"
    assert len(project.report["kept"]) + 1 == reference.kept
    assert project.report["stopped"] == ("keep_limit" if reference.kept == NUM_LOOP else "confident")


def test_same_images_and_final_pick(reference, project):
    ours = project.images.permute(0, 3, 1, 2)
    theirs = torch.stack(reference.edits)
    difference = float((ours - theirs).abs().max())
    print(f"max abs image difference over {len(theirs)} passes: {difference:.2e}")
    assert difference < IMAGE_TOLERANCE
    assert (project.best_index is None) == reference.final_is_source
    assert float((project.best_image[0].permute(2, 0, 1) - reference.final).abs().max()) < IMAGE_TOLERANCE


def test_the_cli_writes_that_pick(tiny_emoeditor_files, project, tmp_path, capsys):
    from emotion_core.cli import main
    from emotion_core.images import to_pil

    release = tiny_emoeditor_files
    out, report = tmp_path / "best.png", tmp_path / "report.json"
    code = main(["edit", str(release["image"]), "--target", TARGET, "--emoeditor", "--unet", str(release["ip2p"]),
                 "--vae", str(release["ip2p"]), "--encoder", str(release["encoder"]), "--critic",
                 str(release["predictor"]), "--out", str(out), "--seed", str(SEED), "--steps", str(STEPS),
                 "--max-iterations", str(NUM_LOOP), "--report", str(report), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["procedure"], result["resolution"], result["best"]) == ("emoeditor", "224", project.best_index)
    written = json.loads(report.read_text())
    assert [c["accepted"] for c in _passes(written)] == [c["accepted"] for c in _passes(project.report)]
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(to_pil(project.best_image)))
    assert CLASSES.index(TARGET) == 4  # alphabetical, as the encoder and predictor read it
