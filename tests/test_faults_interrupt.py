"""Interrupts in the middle of long runs: the critic loop (core and the ``edit`` /
``generate --critic-loop`` commands), a DPO training run and a bank build. Nothing is
half-written (no output, no partial file, no temp file; a previous file stays as it
was) and running again (``--resume`` for DPO) gives exactly what an uninterrupted
run gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from emotion_core.cli import main
from emotion_core.critic_loop import Candidates, LoopSettings, run_critic_loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Interrupted(Exception):
    """Stands for ComfyUI's InterruptProcessingException."""


def _after(calls: int, exception=KeyboardInterrupt):
    """A callable that raises on its ``calls``-th call."""
    count = {"n": 0}

    def tick(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise exception()

    return tick


def _save_file_cut_half_way(save_file):
    """``save_file`` that writes the whole file, cuts it in half, then is interrupted."""

    def save_half_then_interrupt(tensors, path, *args, **kwargs):
        save_file(tensors, path, *args, **kwargs)
        with open(path, "r+b") as handle:
            handle.truncate(handle.seek(0, 2) // 2)
        raise KeyboardInterrupt

    return save_half_then_interrupt


def _files_in(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _temp_files(folder) -> list[str]:
    return [name for name in _files_in(folder) if name.endswith(".tmp")]


# --- critic loop, core -------------------------------------------------------------------------------

def _toy_generate(seeds, denoise, state):
    images = torch.stack([torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(s * 31 + state.iteration))
                          for s in seeds])
    return Candidates(images)


def _toy_critic(images):
    means = images.mean(dim=(1, 2))  # [N, 3]
    return torch.softmax(torch.cat([means, means.flip(-1), means[:, :2]], dim=1) * 20, dim=1)


def test_core_loop_interrupted_mid_pass_leaves_nothing_and_reruns_identically():
    settings = LoopSettings(max_iterations=4, candidates=2, seed=5, confidence=1.0)
    straight = run_critic_loop(_toy_generate, _toy_critic, "awe", settings)
    passes = []
    with pytest.raises(Interrupted):  # checks run before and after each generate: call 4 = inside pass 2
        run_critic_loop(_toy_generate, _toy_critic, "awe", settings, check_interrupt=_after(4, Interrupted),
                        on_pass=passes.append)
    assert len(passes) == 1  # pass 2 was cut: it reported nothing
    again = run_critic_loop(_toy_generate, _toy_critic, "awe", settings)
    assert again.report == straight.report and torch.equal(again.images, straight.images)


# --- critic loop, CLI -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd(critic_loop_files):
    return critic_loop_files


def _edit(sd, out):
    return ["edit", str(sd["image"]), "--target", "awe", "--model", str(sd["pipeline"]), "--critic", str(sd["critic"]),
            "--out", str(out / "best.png"), "--report", str(out / "report.json"), "--steps", "2",
            "--max-iterations", "3", "--candidates", "2", "--ssim-min", "0", "--ssim-max", "1", "--confidence", "1"]


def _generate_loop(sd, out):
    return ["generate", "--model", str(sd["pipeline"]), "--emotion", "awe", "--prompt", "a mountain", "--steps", "2",
            "--width", "32", "--height", "32", "--out", str(out / "best.png"), "--report", str(out / "report.json"),
            "--critic-loop", "--critic", str(sd["critic"]), "--max-iterations", "3", "--candidates", "2",
            "--confidence", "1"]


@pytest.mark.parametrize("command", [_edit, _generate_loop], ids=["edit", "generate_critic_loop"])
def test_cli_loop_interrupted_writes_nothing_then_reruns_identically(command, sd, tmp_path, monkeypatch, capsys):
    import emotion_core.pipeline.critic_loop as pipeline_loop  # samples every pass

    reference, cut, rerun = tmp_path / "reference", tmp_path / "cut", tmp_path / "rerun"
    for folder in (reference, cut, rerun):
        folder.mkdir()
    assert main(command(sd, reference)) == 0
    real_sample = pipeline_loop.sample
    interrupt = _after(2)  # the second pass's sampling call

    def sample(*args, **kwargs):
        interrupt()
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(pipeline_loop, "sample", sample)
    assert main(command(sd, cut)) == 1
    assert "interrupted" in capsys.readouterr().err
    assert _files_in(cut) == []  # no image, no report, no temp file
    monkeypatch.setattr(pipeline_loop, "sample", real_sample)
    assert main(command(sd, rerun)) == 0
    assert (rerun / "best.png").read_bytes() == (reference / "best.png").read_bytes()
    assert (rerun / "report.json").read_bytes() == (reference / "report.json").read_bytes()


def test_cli_interrupted_while_writing_the_image_leaves_no_partial_file(sd, tmp_path, monkeypatch, capsys):
    from PIL import Image as PILImage

    real_save = PILImage.Image.save

    def save_half_then_interrupt(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        fp.truncate(fp.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(PILImage.Image, "save", save_half_then_interrupt)
    assert main(_edit(sd, tmp_path)) == 1
    capsys.readouterr()
    assert _files_in(tmp_path) == []


# --- DPO training, CLI -------------------------------------------------------------------------------

RES = 64


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from emotion_core.preference import PreferenceStore

    root = tmp_path_factory.mktemp("faults_prefs") / "ds"
    store = PreferenceStore(root)
    rng = np.random.default_rng(1)
    from emotion_core.testing.diffusers_assets import CROSS_DIM
    from emotion_core.visual_prompt import VisualPrompt

    g = torch.Generator().manual_seed(1)

    def prompt(source):  # recorded visual prompt tokens, as the collector node saves them
        return VisualPrompt({"positive": torch.randn(4, CROSS_DIM, generator=g), "negative": torch.zeros(4, CROSS_DIM)},
                            "sd15", "base", CROSS_DIM, source)

    for target, negative in (("contentment", "sadness"), ("awe", "fear")):
        chosen, rejected = (Image.fromarray(rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)) for _ in range(2))
        store.add(chosen, rejected, "a quiet harbour", target, negative, prompt(target), prompt(negative))
    return root


def _train(sd, pairs, out, *extra):
    return ["train-dpo", "--data", str(pairs), "--base", str(sd["pipeline"]), "--adapter", str(sd["adapter_base"]),
            "--out", str(out), "--steps", "4", "--resolution", str(RES), "--beta", "500", "--lr", "3e-3", "--seed", "3",
            "--checkpoint-every", "2", "--log-with", "none", "--cache-latents", "off", *extra]


def _crash_training_at(monkeypatch, step: int):
    """The CLI's training run, with an interrupt right after optimizer step ``step``."""
    import emotion_core.training as training

    real = training.train_dpo

    def crash(done, terms):
        if done == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_dpo", lambda *args, **kwargs: real(*args, **kwargs, on_step=crash))


def test_dpo_interrupted_after_a_checkpoint_resumes_to_the_same_adapter(sd, pairs, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight" / "dpo.safetensors"
    straight.parent.mkdir()
    assert main(_train(sd, pairs, straight)) == 0
    out = tmp_path / "run" / "dpo.safetensors"
    out.parent.mkdir()
    _crash_training_at(monkeypatch, 3)
    assert main(_train(sd, pairs, out)) == 1
    assert "interrupted" in capsys.readouterr().err
    assert [p for p in _files_in(out.parent) if p.count("/") < 2] == ["dpo.safetensors.checkpoints",
                                                                    "dpo.safetensors.checkpoints/step_00000002"]
    monkeypatch.undo()
    assert main(_train(sd, pairs, out, "--resume", "--json")) == 0
    assert '"resumed_from": 2' in capsys.readouterr().out
    assert out.read_bytes() == straight.read_bytes()
    assert _temp_files(out.parent) == []


def test_dpo_interrupted_while_saving_a_checkpoint_keeps_the_previous_one(sd, pairs, tmp_path, monkeypatch, capsys):
    import emotion_core.training.trainer as loop

    real_save = torch.save
    saves = {"n": 0}

    def save_half_then_interrupt(obj, path, *args, **kwargs):
        saves["n"] += 1
        real_save(obj, path, *args, **kwargs)
        if saves["n"] == 5:  # step 4's checkpoint (of 6; accelerate torch.saves 3 files per checkpoint): cut
            with open(path, "r+b") as handle:
                handle.truncate(handle.seek(0, 2) // 2)
            raise KeyboardInterrupt

    out = tmp_path / "dpo.safetensors"
    argv = [*_train(sd, pairs, out)]
    argv[argv.index("--steps") + 1] = "6"
    monkeypatch.setattr(loop.torch, "save", save_half_then_interrupt)
    assert main(argv) == 1
    capsys.readouterr()
    monkeypatch.undo()
    assert [p for p in _files_in(tmp_path) if p.count("/") < 2] == ["dpo.safetensors.checkpoints",
                                                                  "dpo.safetensors.checkpoints/step_00000002"]
    assert main([*argv, "--resume", "--json"]) == 0
    assert '"resumed_from": 2' in capsys.readouterr().out


def test_dpo_interrupted_while_writing_the_adapter_leaves_no_partial_file(sd, pairs, tmp_path, monkeypatch, capsys):
    import emotion_core.weights as weights

    out = tmp_path / "dpo.safetensors"
    monkeypatch.setattr(weights, "save_file", _save_file_cut_half_way(weights.save_file))
    assert main(_train(sd, pairs, out)) == 1
    capsys.readouterr()
    assert not out.exists() and _temp_files(tmp_path) == []


# --- bank build, CLI -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emoset(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_emoset")
    rng = np.random.default_rng(0)
    for emotion in ("awe", "fear"):
        for theme in ("big_mountain", "dark_forest"):
            for i in range(2):
                path = root / emotion / f"{theme}_{i}.png"
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return root


def _bank(sd, emoset, out, clusters: int):
    return ["bank", "build", "--images", str(emoset), "--clip", str(sd["critic"]), "--out", str(out), "--clusters",
            str(clusters), "--overwrite"]


@pytest.mark.parametrize("where", ["feature_extraction", "save"])
def test_bank_build_interrupted_keeps_the_previous_bank(where, sd, emoset, tmp_path, monkeypatch, capsys):
    import emotion_core.bank.extract as extract
    import emotion_core.weights as weights

    out = tmp_path / "bank.safetensors"
    assert main(_bank(sd, emoset, out, 1)) == 0
    previous = out.read_bytes()
    fresh = tmp_path / "fresh" / "bank.safetensors"
    assert main(_bank(sd, emoset, fresh, 2)) == 0
    if where == "feature_extraction":
        real_load = extract.load_image
        interrupt = _after(3)  # the third image of the folder

        def load_image(path):
            interrupt()
            return real_load(path)

        monkeypatch.setattr(extract, "load_image", load_image)
    else:
        monkeypatch.setattr(weights, "save_file", _save_file_cut_half_way(weights.save_file))
    assert main(_bank(sd, emoset, out, 2)) == 1
    assert "interrupted" in capsys.readouterr().err
    assert out.read_bytes() == previous
    cache = "bank.safetensors.cache"  # whole files only: the resumable feature cache
    assert [f for f in _files_in(tmp_path) if not f.startswith(cache)] == ["bank.safetensors", "fresh",
                                                                            "fresh/bank.safetensors"]
    assert not _temp_files(tmp_path)
    monkeypatch.undo()
    assert main(_bank(sd, emoset, out, 2)) == 0
    capsys.readouterr()
    assert out.read_bytes() == fresh.read_bytes()


# --- preference pair, interrupted between its files -------------------------------------------------

def test_preference_pair_interrupted_between_its_files_leaves_no_orphan(tmp_path, monkeypatch):
    from emotion_core.preference import PreferenceStore, read_dataset

    def picture(seed):
        return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))

    store = PreferenceStore(tmp_path / "ds")
    store.add(picture(1), picture(2), "a harbour", "awe")
    before = _files_in(tmp_path / "ds")
    real_save = Image.Image.save
    interrupt = _after(2)  # the rejected image, once the chosen one has its final name

    def save(self, *args, **kwargs):
        interrupt()
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(KeyboardInterrupt):
        store.add(picture(3), picture(4), "a street", "fear")
    monkeypatch.undo()
    assert _files_in(tmp_path / "ds") == before
    assert store.add(picture(3), picture(4), "a street", "fear").id == "000002"
    assert [p.id for p in read_dataset(tmp_path / "ds").pairs] == ["000001", "000002"]
