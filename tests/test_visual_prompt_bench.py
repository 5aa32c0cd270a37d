"""``bench injector``: its JSON keys at a tiny size, its memory counter, and that a slowed
injector fails the time target."""

import argparse
import json
import time

import pytest
import torch

from emotion_core.benchmarks import injector_bench as injector
from emotion_core.cli import main
from emotion_core.errors import InvalidInputError
from emotion_core.visual_prompt.attention import ImagePromptAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ("--size", "8", "--steps", "1", "--repeats", "1", "--path", "diffusers")
KEYS = {"benchmark", "model", "unet", "cross_attention_layers", "latent", "image_tokens", "steps", "repeats",
        "threads", "clock", "path", "plain_s_per_step", "injected_s_per_step", "ratio", "ratio_min", "noisy", "noise",
        "ratio_target", "within_target", "model_calls_per_step", "timings", "plain_peak_bytes",
        "injected_peak_bytes", "memory_growth_bytes", "adapter_weight_bytes", "projected_kv_bytes",
        "memory_growth_ratio", "adapter_resident_bytes", "injected_resident_peak_bytes", "resident_growth_bytes",
        "resident_growth_ratio", "memory_target", "within_targets", "paths"}


def _args(*argv):
    parser = argparse.ArgumentParser()
    injector.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_live_tensor_bytes_counts_new_storage_only():
    tracker = injector.LiveTensorBytes()
    existing = torch.zeros(1000)
    with tracker.mode():
        a = torch.ones(1000)  # 4000 bytes
        view = a.view(10, 100)  # alias: nothing new
        existing.add_(1)  # in place on old memory: nothing new
        b = a * 2  # 4000 bytes
        del a, view
        c = b + 1  # a is gone: live stays at 8000
    assert tracker.peak == 8000
    assert tracker.live == 8000
    del b, c
    assert tracker.live == 0


def test_json_keys_and_memory_figures(capsys):
    assert main(["bench", "injector", *TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS and set(result["paths"]) == {"diffusers"}
    assert result["cross_attention_layers"] == 7 and result["model_calls_per_step"] == 1.0
    assert result["injected_peak_bytes"] - result["plain_peak_bytes"] == result["memory_growth_bytes"]
    assert result["memory_growth_bytes"] >= result["projected_kv_bytes"] > 0
    # resident: the loaded adapter stays in memory next to the step's growth
    assert result["adapter_resident_bytes"] >= result["adapter_weight_bytes"]
    assert result["resident_growth_bytes"] == result["memory_growth_bytes"] + result["adapter_resident_bytes"]
    assert result["resident_growth_ratio"] > 1.0 > result["memory_growth_ratio"]


def test_a_slowed_injector_fails_the_time_target(monkeypatch):
    real = ImagePromptAttention.__call__

    def slowed(self, q, k, v, extra_options):
        end = time.process_time() + 0.01  # 10 ms of CPU per cross-attention call
        while time.process_time() < end:
            pass
        return real(self, q, k, v, extra_options)

    monkeypatch.setattr(ImagePromptAttention, "__call__", slowed)
    result = injector.run(_args(*TINY))
    assert result["ratio_min"] > injector.RATIO_TARGET and result["within_target"] is False


def test_bad_arguments_are_bad_input():
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        injector.run(_args("--size", "12"))
    with pytest.raises(InvalidInputError, match="--repeats"):
        injector.run(_args("--repeats", "0"))
