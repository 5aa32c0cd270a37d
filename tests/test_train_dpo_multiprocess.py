"""train-dpo in two real CPU processes under ``accelerate launch`` (gloo DDP), as the README
documents: the result equals one process with the same global batch within 1e-5, only one
process writes and reports, and a two-process run interrupted after a checkpoint ends, with
``--resume``, byte-identical to the uninterrupted one.

The runs use Adam epsilon 1e-4: the two runs' gradients differ by float rounding (a mean
over the batch vs DDP's all-reduce), and with the default 1e-8 Adam turns a rounding-sized
difference in a near-zero gradient into a step of about the learning rate."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emotion_core.cli import main
from emotion_core.testing.preference_assets import write_colour_pairs

pytest.importorskip("accelerate")
pytest.importorskip("peft")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 32
HELPERS = Path(__file__).parent / "helpers"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(*command: str) -> subprocess.CompletedProcess:
    """The README's CPU recipe: two processes, one thread each."""
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                           "--main_process_port", str(_free_port()), *command],
                          capture_output=True, text=True, env=env, timeout=600)


def _args(files, data, out, batch: int) -> list[str]:
    return ["train-dpo", "--data", str(data), "--base", str(files["pipeline"]), "--adapter",
            str(files["adapter_base"]), "--out", str(out), "--train", "both", "--lora-rank", "2", "--steps", "4",
            "--batch-size", str(batch), "--resolution", str(RES), "--beta", "500", "--lr", "3e-4", "--adam-epsilon",
            "1e-4", "--seed", "5", "--cache-latents", "off", "--log-with", "none", "--no-progress", "--json"]


@pytest.fixture(scope="module")
def two_process_run(tiny_sd_pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo_2proc")
    data = write_colour_pairs(root / "data", pairs=4, size=RES)
    out = root / "two.safetensors"
    done = _launch("-m", "emotion_core", *_args(tiny_sd_pipeline, data, out, batch=1))
    assert done.returncode == 0, done.stderr[-3000:]
    return tiny_sd_pipeline, data, out, done


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_two_processes_equal_one_process_with_the_same_global_batch(two_process_run, tmp_path, capsys):
    files, data, out, done = two_process_run
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, done.stdout  # one process reports
    assert reports[0]["processes"] == 2 and reports[0]["global_batch"] == 2
    single = tmp_path / "one.safetensors"
    assert main(_args(files, data, single, batch=2)) == 0
    assert json.loads(capsys.readouterr().out)["processes"] == 1
    initial = _tensors(files["adapter_base"])
    for two, one in ((out, single), (out.with_name("two_lora.safetensors"), tmp_path / "one_lora.safetensors")):
        a, b = _tensors(two), _tensors(one)
        assert a.keys() == b.keys()
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        assert worst <= 1e-5, f"{two.name}: max difference {worst}"
    moved = max(float((_tensors(out)[k].float() - v.float()).abs().max()) for k, v in initial.items())
    assert moved > 1e-4  # the runs trained


def test_interrupted_two_process_run_resumes_byte_identical(two_process_run, tmp_path, capsys):
    files, data, out, _ = two_process_run
    resumed = tmp_path / "two.safetensors"
    args = _args(files, data, resumed, batch=1)
    stopped = _launch(str(HELPERS / "interrupted_train_dpo.py"), "3", *args, "--checkpoint-every", "2")
    assert stopped.returncode != 0 and not resumed.exists()
    folder = tmp_path / "two.safetensors.checkpoints"
    assert folder.is_dir() and [p.name for p in folder.iterdir()] == ["step_00000002"], stopped.stderr[-3000:]
    done = _launch("-m", "emotion_core", *args, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["resumed_from"] == 2
    for name in ("two.safetensors", "two_lora.safetensors"):
        assert (tmp_path / name).read_bytes() == out.with_name(name).read_bytes(), name
    assert main([*args, "--resume", "--overwrite"]) == 2  # one process cannot continue a two-process run
    assert "number of processes: checkpoint 2, now 1" in capsys.readouterr().err
