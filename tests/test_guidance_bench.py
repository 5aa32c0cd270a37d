"""``bench guidance``: its JSON keys, and that its figures come from the product's calls (a
forward hook on the UNet) and can exceed the target."""

import argparse
import json

import pytest

from emotion_core.benchmarks import guidance_bench as guidance
from emotion_core.benchmarks import probes
from emotion_core.cli import main
from emotion_core.pipeline import sampling

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ("--size", "8", "--steps", "1", "--repeats", "1", "--path", "pipeline")
KEYS = {"benchmark", "model", "unet", "latent", "steps", "repeats", "threads", "clock", "path", "cfg_s_per_step",
        "three_branch_s_per_step", "ratio", "ratio_min", "noisy", "noise", "ratio_target", "within_target",
        "model_calls_per_step", "cfg_model_calls_per_step", "timings", "batch_row_limit", "paths"}


def _args(*argv):
    parser = argparse.ArgumentParser()
    guidance.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_json_keys_and_one_unet_call_per_step_through_the_pipeline(capsys):
    assert main(["bench", "guidance", *TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS and set(result["paths"]) == {"pipeline"}
    assert result["path"] == "pipeline" and result["threads"] == 1 and result["ratio_target"] == 1.52
    assert result["model_calls_per_step"] == 1.0 and result["cfg_model_calls_per_step"] == 1.0
    assert set(result["timings"]) == {"cfg", "three_branch"}
    assert result["ratio"] == pytest.approx(result["three_branch_s_per_step"] / result["cfg_s_per_step"], rel=1e-2)


def test_calls_are_counted_by_the_hook_on_the_unet(monkeypatch):
    class NoHook(guidance.CallCounter):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(probes, "CallCounter", NoHook)
    result = guidance.run(_args(*TINY))
    assert result["model_calls_per_step"] == 0.0  # without the hook nothing counts them


def test_a_three_branch_sampler_doing_twice_the_work_fails_the_target(monkeypatch):
    real = sampling.sample

    def twice(pipe, branch_embeds, *args, **kwargs):
        if len(branch_embeds) == 3:  # the three-branch variant samples twice per timed run
            real(pipe, branch_embeds, *args, **kwargs)
        return real(pipe, branch_embeds, *args, **kwargs)

    monkeypatch.setattr(sampling, "sample", twice)
    result = guidance.run(_args(*TINY))
    assert result["model_calls_per_step"] == 2.0
    assert result["ratio_min"] > guidance.RATIO_TARGET and result["within_target"] is False


def test_flux_tiny_needs_comfyui(monkeypatch, capsys):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    assert main(["bench", "guidance", "--model", "flux-tiny", "--json"]) == 2
    assert "COMFYUI_PATH" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys):
    assert main(["bench", "guidance", "--size", "12", "--json"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    assert main(["bench", "guidance", "--threads", "0", "--json"]) == 2
    assert "--threads" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--unet", "sd3")
