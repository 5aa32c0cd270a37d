"""Negative-visual Diffusion-DPO on the tiny diffusers pipeline, in one process: the loss
against a hand computation; a learnable preference (the winner is red) is learned; only what
``--train`` names changes; resuming equals an uninterrupted run byte for byte; the latent
cache changes nothing but the cost; bf16 autocast runs; and the CLI's bad input."""

from __future__ import annotations

import json
import math
import shutil
import sys

import pytest
import torch

from emotion_core.cli import main
from emotion_core.errors import InvalidInputError
from emotion_core.preference import read_dataset
from emotion_core.training import TrainConfig, diffusion_dpo_loss, train_dpo
from emotion_core.training.data import prepare_examples
from emotion_core.visual_prompt import load_adapter
from emotion_core.testing.preference_assets import write_colour_pairs, write_pairs_without_visual_prompts

RES = 32  # 4x4 latents on the tiny pipeline

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


@pytest.fixture(scope="module")
def colour_pairs(tmp_path_factory):
    return write_colour_pairs(tmp_path_factory.mktemp("prefs") / "colour", pairs=6, size=RES)


def _examples(root, adapter):
    examples, skipped = prepare_examples(read_dataset(root).pairs, adapter.layout.cross_dim)
    assert not skipped and examples
    return examples


def _config(**kwargs):
    return TrainConfig(**{"steps": 4, "beta": 500.0, "lr": 1e-3, "resolution": RES, "seed": 3,
                          "cache_latents": "off", **kwargs})


def _states(*modules):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]


def _same(module, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


def test_a_learnable_preference_is_learned_and_only_the_adapter_changes(tiny, colour_pairs):
    """The winner is always the red image: within a few dozen steps the trained model prefers it
    more than the reference does on most fresh noise draws (reward accuracy > 0.5)."""
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    frozen = _states(pipe.unet, pipe.vae, pipe.text_encoder, encoder.model, adapter)
    result = train_dpo(pipe, adapter, _examples(colour_pairs, adapter),
                       _config(steps=24, batch_size=2, lr=3e-4, beta=200.0), encoder, progress=False)
    for module, state in zip((pipe.unet, pipe.vae, pipe.text_encoder, encoder.model, adapter), frozen):
        assert _same(module, state), f"{type(module).__name__} changed"
    assert result.accuracies[0] == 0.0 and result.losses[0] == pytest.approx(math.log(2))  # model == reference
    late = result.accuracies[-10:]
    assert sum(late) / len(late) > 0.5, result.accuracies
    trained, initial = result.adapter.state_dict(), adapter.state_dict()
    changed = {k for k, v in trained.items() if not torch.equal(v.to(initial[k].dtype), initial[k])}
    assert any(k.startswith("ip_adapter.") for k in changed) and any(k.startswith("image_proj.") for k in changed)
    assert result.lora is None and result.summary()["reward_accuracy"] > 0.5


def test_unet_lora_trains_only_the_lora_and_exports_kohya_keys(tiny, colour_pairs):
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    before = _states(pipe.unet, adapter)
    result = train_dpo(pipe, adapter, _examples(colour_pairs, adapter), _config(train="unet-lora", lora_rank=2,
                                                                                lora_alpha=4.0), encoder,
                       progress=False)
    assert _same(pipe.unet, before[0]) and _same(adapter, before[1])
    assert not any(".lora_" in name for name, _ in pipe.unet.named_parameters()), "the LoRA was not removed"
    assert all(torch.equal(v, before[1][k].float()) for k, v in result.adapter.state_dict().items())
    lora = result.lora
    bases = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in lora}
    attention = [n for n, m in pipe.unet.named_modules() if n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v")
                 or n.endswith("to_out.0")]
    assert len(bases) == len(attention) == len(lora) // 3
    assert all(b.startswith("lora_unet_") and "." not in b for b in bases)
    assert all(float(lora[f"{b}.alpha"]) == 4.0 and lora[f"{b}.lora_down.weight"].shape[0] == 2 for b in bases)
    assert any(lora[f"{b}.lora_up.weight"].abs().max() > 0 for b in bases), "lora_up never moved from zero"


def test_resume_is_byte_identical_and_refuses_other_settings(tiny, colour_pairs, tmp_path):
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    examples = _examples(colour_pairs, adapter)
    settings = {"train": "both", "lora_rank": 2, "batch_size": 2}
    straight = train_dpo(pipe, adapter, examples, _config(**settings), encoder, progress=False)
    folder = tmp_path / "ckpt"

    def crash(step, terms):
        if step == 3:
            raise KeyboardInterrupt  # after step 3; the newest checkpoint is step 2's

    with pytest.raises(KeyboardInterrupt):
        train_dpo(pipe, adapter, examples, _config(**settings, checkpoint_every=2, checkpoint_dir=folder), encoder,
                  progress=False, on_step=crash)
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002"]
    assert (folder / "step_00000002" / "trainable.safetensors").stat().st_size < 10 * 2**20  # no frozen UNet
    resumed = train_dpo(pipe, adapter, examples, _config(**settings, checkpoint_dir=folder, resume=True), encoder,
                        progress=False)
    assert resumed.start_step == 2 and resumed.losses == straight.losses[2:]
    for key, value in straight.adapter.state_dict().items():
        assert torch.equal(value, resumed.adapter.state_dict()[key]), key
    assert all(torch.equal(v, resumed.lora[k]) for k, v in straight.lora.items())
    for change, named in (({"train": "adapter"}, "--train: checkpoint 'both', now 'adapter'"),
                          ({"lora_rank": 4}, "--lora-rank: checkpoint 2, now 4"),
                          ({"beta": 1.0}, "--beta")):
        with pytest.raises(InvalidInputError, match=named):
            train_dpo(pipe, adapter, examples, _config(**{**settings, **change}, checkpoint_dir=folder, resume=True),
                      encoder, progress=False)


def test_gradient_accumulation_equals_the_larger_batch(tiny, colour_pairs):
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    examples = _examples(colour_pairs, adapter)
    settings = {"steps": 2, "lr": 3e-4, "adam_epsilon": 1e-4}  # as the multi-process test, which says why
    big = train_dpo(pipe, adapter, examples, _config(**settings, batch_size=2), encoder, progress=False)
    accumulated = train_dpo(pipe, adapter, examples, _config(**settings, grad_accum=2), encoder, progress=False)
    assert accumulated.global_batch == big.global_batch == 2 and len(accumulated.losses) == 2
    assert accumulated.losses == pytest.approx(big.losses, rel=1e-3)  # beta 500 magnifies rounding
    trained = accumulated.adapter.state_dict()
    worst = max(float((value - trained[key]).abs().max()) for key, value in big.adapter.state_dict().items())
    assert worst <= 1e-5


def test_latent_cache_encodes_each_image_once_and_changes_nothing(tiny, colour_pairs, tmp_path):
    from emotion_core.training.latent_cache import LatentCache, module_digest

    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    examples = _examples(colour_pairs, adapter)
    plain = train_dpo(pipe, adapter, examples, _config(steps=2), encoder, progress=False)
    cached = train_dpo(pipe, adapter, examples, _config(steps=2, cache_latents="auto", cache_dir=tmp_path),
                       encoder, progress=False)
    assert cached.cached_latents and not plain.cached_latents and cached.losses == plain.losses
    cache = LatentCache(tmp_path, module_digest(pipe.vae), RES)
    images = {p for e in examples for p in (e.pair.chosen, e.pair.rejected)}
    assert len(list(cache.folder.glob("*.safetensors"))) == len(images)
    copy = tmp_path / "renamed.png"
    shutil.copy(examples[0].pair.chosen, copy)
    assert cache.fill([copy, *images], lambda path: pytest.fail("re-encoded a cached image")) == 0  # by content
    too_small = train_dpo(pipe, adapter, examples, _config(steps=1, cache_latents="auto", cache_dir=tmp_path / "b",
                                                            cache_budget_gb=1e-9), encoder, progress=False)
    assert not too_small.cached_latents and not (tmp_path / "b").exists()


def test_bf16_mixed_precision_runs_on_the_cpu(tiny, colour_pairs):
    files, pipe, encoder = tiny
    adapter = load_adapter(files["adapter_base"])
    result = train_dpo(pipe, adapter, _examples(colour_pairs, adapter), _config(steps=2, mixed_precision="bf16",
                                                                                train="both"), encoder,
                       progress=False)
    assert all(math.isfinite(x) for x in result.losses) and result.lora is not None
    assert not torch.equal(result.adapter.ip_adapter["1"].to_k_ip.weight,
                           adapter.ip_adapter["1"].to_k_ip.weight.float())


def test_out_of_memory_advice_names_the_batch_size():
    from emotion_core.training.memory import advise_on_oom

    with pytest.raises(InvalidInputError, match=r"lower --batch-size \(now 4.*--grad-accum \(now 2\).*global batch "
                                                r"of 64.*bf16"):
        with advise_on_oom(batch_size=4, grad_accum=2, processes=8, resolution=512, mixed_precision="no"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors pass through
        with advise_on_oom(1, 1, 1, 512, "no"):
            raise RuntimeError("shape mismatch")


def _argv(files, data, out, *extra):
    return ["train-dpo", "--data", str(data), "--base", str(files["pipeline"]), "--adapter",
            str(files["adapter_base"]), "--out", str(out), "--steps", "1", "--resolution", str(RES), "--beta", "100",
            "--no-progress", "--json", *extra]


def test_cli_trains_writes_the_files_and_reports(tiny, colour_pairs, tmp_path, capsys):
    files, _, _ = tiny
    out = tmp_path / "dpo.safetensors"
    argv = _argv(files, colour_pairs, out, "--train", "both", "--lora-rank", "2", "--log-with", "jsonl")
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 6 and report["steps"] == 1 and report["lora"].endswith("dpo_lora.safetensors")
    assert {"final_loss", "reward_accuracy", "seconds_per_step", "cached_latents"} <= set(report)
    assert load_adapter(out).layout == load_adapter(files["adapter_base"]).layout
    logged = [json.loads(line) for line in (tmp_path / "dpo.safetensors.logs/train-dpo/metrics.jsonl").open()]
    assert logged[-1]["step"] == 1 and set(logged[-1]) >= {"loss", "reward_accuracy", "lr"}
    assert main(argv) == 2 and "exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def test_cli_dry_run_needs_no_model_and_bad_input(tiny, colour_pairs, tmp_path, capsys, monkeypatch):
    files, _, _ = tiny
    assert main(["train-dpo", "--data", str(colour_pairs), "--dry-run", "--json"]) == 0  # no --base/--adapter/--out
    assert json.loads(capsys.readouterr().out)["count"] == 6
    bare = write_pairs_without_visual_prompts(tmp_path / "bare", size=RES)
    assert main(_argv(files, bare, tmp_path / "a.safetensors")) == 2
    assert "--bank" in capsys.readouterr().err
    assert main(["train-dpo", "--data", str(bare), "--out", str(tmp_path / "b.safetensors")]) == 2
    assert "needs --base, --adapter" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed
    assert main(_argv(files, bare, tmp_path / "c.safetensors", "--train", "unet-lora")) == 2
    assert "emotion-director[train]" in capsys.readouterr().err
