"""Negative-visual Diffusion-DPO: the loss against a hand computation; on the tiny diffusers
pipeline the preference margin grows, only adapter weights change, resuming equals an
uninterrupted run, and the CLI writes an adapter the injector loads."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from emotion_core.cli import main
from emotion_core.errors import InvalidInputError
from emotion_core.preference import PreferenceStore, read_dataset
from emotion_core.training import TrainConfig, diffusion_dpo_loss, train_dpo
from emotion_core.training.data import prepare_examples
from emotion_core.visual_prompt import VisualPrompt, load_adapter

RES = 64  # the tiny pipeline's 8x8 latents


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dpo_loss_matches_hand_computation():
    w, l = torch.tensor([0.30, 0.50]), torch.tensor([0.40, 0.45])
    ref_w, ref_l = torch.tensor([0.35, 0.50]), torch.tensor([0.35, 0.50])
    beta = 20.0
    # pair 0: model diff -0.10, ref diff 0.00 -> inside = -0.5*20*(-0.10) = 1.0
    # pair 1: model diff  0.05, ref diff 0.00 -> inside = -0.5*20*( 0.05) = -0.5
    expected = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(1 / (1 + math.exp(0.5)))) / 2
    terms = diffusion_dpo_loss(w, l, ref_w, ref_l, beta)
    assert float(terms.loss) == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(terms.margin, torch.tensor([0.10, -0.05]))
    assert float(terms.accuracy) == 0.5
    same = diffusion_dpo_loss(w, l, w, l, beta)
    assert float(same.loss) == pytest.approx(math.log(2)) and torch.count_nonzero(same.margin) == 0


@pytest.fixture(scope="module")
def tiny(tiny_sd_pipeline):
    from emotion_core.pipeline import load_pipeline
    from emotion_core.pipeline.visual import load_image_encoder

    files = tiny_sd_pipeline
    return files, load_pipeline(files["pipeline"]), load_image_encoder(files["image_encoder"])


def _picture(seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(RES, RES, 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory):
    """Two pairs without visual prompt files: each branch uses its own image through the encoder."""
    root = tmp_path_factory.mktemp("prefs") / "ds"
    store = PreferenceStore(root)
    store.add(_picture(1), _picture(2), "a quiet harbour", "contentment", "sadness")
    store.add(_picture(3), _picture(4), "a mountain", "awe", "fear")
    return root


def _examples(root, adapter):
    examples, skipped = prepare_examples(read_dataset(root).pairs, adapter.layout.cross_dim)
    assert not skipped
    return examples


def _config(**kwargs):
    return TrainConfig(**{"steps": 24, "beta": 500.0, "lr": 3e-3, "resolution": RES, "seed": 3, **kwargs})


def test_margin_grows_and_only_the_adapter_changes(tiny, image_dataset):
    from emotion_core.training.trainer import DPOModel

    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    examples = _examples(image_dataset, adapter)
    frozen = {name: {k: v.clone() for k, v in module.state_dict().items()}
              for name, module in (("unet", pipe.unet), ("vae", pipe.vae), ("text", pipe.text_encoder),
                                   ("encoder", encoder.model))}
    initial = {k: v.clone() for k, v in adapter.state_dict().items()}
    result = train_dpo(pipe, adapter, examples, _config(steps=12), encoder, progress=False)
    for name, module in (("unet", pipe.unet), ("vae", pipe.vae), ("text", pipe.text_encoder),
                         ("encoder", encoder.model)):
        assert all(torch.equal(v, frozen[name][k]) for k, v in module.state_dict().items()), f"{name} changed"
    assert all(torch.equal(v, initial[k]) for k, v in adapter.state_dict().items()), "the input adapter is a copy"
    trained = result.adapter.state_dict()
    changed = [k for k, v in trained.items() if not torch.equal(v.to(initial[k].dtype), initial[k])]
    assert any(k.startswith("ip_adapter.") for k in changed) and any(k.startswith("image_proj.") for k in changed)
    # margin on fixed noise draws: 0 for the adapter as given, > 0 once trained (the reference stays the input)
    before = DPOModel(pipe, adapter, encoder).margin(examples, seed=11, resolution=RES, samples=2)
    after = DPOModel(pipe, result.adapter, encoder)
    after.reference = DPOModel(pipe, adapter, encoder).reference
    margin = after.margin(examples, seed=11, resolution=RES, samples=2)
    assert before == pytest.approx(0.0, abs=1e-9)
    assert margin > 0.0, f"preference margin did not grow: {margin}"


def test_resume_equals_uninterrupted_training(tiny, image_dataset, tmp_path):
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    examples = _examples(image_dataset, adapter)
    straight = train_dpo(pipe, adapter, examples, _config(steps=4), encoder, progress=False)
    folder = tmp_path / "ckpt"

    def crash(step, terms):
        if step == 3:
            raise KeyboardInterrupt  # after step 3; the last checkpoint is step 2's

    with pytest.raises(KeyboardInterrupt):
        train_dpo(pipe, adapter, examples, _config(steps=4, checkpoint_every=2, checkpoint_dir=folder), encoder,
                  progress=False, on_step=crash)
    assert [p.name for p in folder.glob("*.pt")] == ["step_00000002.pt"]
    resumed = train_dpo(pipe, adapter, examples, _config(steps=4, checkpoint_dir=folder, resume=True), encoder,
                        progress=False)
    assert resumed.start_step == 2 and len(resumed.losses) == 2
    assert resumed.losses == straight.losses[2:]
    for key, value in straight.adapter.state_dict().items():
        assert torch.equal(value, resumed.adapter.state_dict()[key]), key
    with pytest.raises(InvalidInputError, match="beta"):
        train_dpo(pipe, adapter, examples, _config(steps=4, beta=1.0, checkpoint_dir=folder, resume=True), encoder,
                  progress=False)


def test_collector_tokens_train_the_key_value_layers(tiny, tmp_path):
    files, pipe, _ = tiny
    adapter = load_adapter(files["adapter_base"])
    g = torch.Generator().manual_seed(0)

    def prompt(source):
        return VisualPrompt({"positive": torch.randn(4, 768, generator=g), "negative": torch.zeros(4, 768)}, "sd15",
                            "base", 768, source)

    store = PreferenceStore(tmp_path / "ds")
    store.add(_picture(5), _picture(6), "a street", "excitement", "sadness", prompt("a"), prompt("b"))
    examples = _examples(tmp_path / "ds", adapter)
    assert not examples[0].needs_encoder
    result = train_dpo(pipe, adapter, examples, _config(steps=2), None, progress=False)
    trained, initial = result.adapter.state_dict(), adapter.state_dict()
    assert all(torch.equal(trained[k], initial[k].float()) for k in initial if k.startswith("image_proj."))
    assert not all(torch.equal(trained[k], initial[k].float()) for k in initial if k.startswith("ip_adapter."))


def test_cli_trains_writes_a_loadable_adapter_and_refuses_overwrite(tiny, image_dataset, tmp_path, capsys):
    files, _, _ = tiny
    with open(image_dataset / "pairs.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"broken": true}\n')
    try:
        out = tmp_path / "dpo.safetensors"
        argv = ["train-dpo", "--data", str(image_dataset), "--base", str(files["pipeline"]), "--adapter",
                str(files["adapter_base"]), "--out", str(out), "--steps", "1", "--resolution", str(RES), "--beta",
                "100", "--json"]
        assert main(argv) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["pairs"] == 2 and report["skipped"] == 1 and report["steps"] == 1
        trained = load_adapter(out)
        assert trained.layout == load_adapter(files["adapter_base"]).layout
        assert main(argv) == 2
        assert "exists" in capsys.readouterr().err
        assert main([*argv, "--overwrite"]) == 0
    finally:
        lines = (image_dataset / "pairs.jsonl").read_text().splitlines()
        (image_dataset / "pairs.jsonl").write_text("\n".join(lines[:-1]) + "\n")
