"""A UNet LoRA trained by train-dpo in real ComfyUI (COMFYUI_PATH): LoraLoaderModelOnly loads
every tensor of the file (ComfyUI only logs "lora key not loaded" for keys it cannot map, so
a wrong layout would load nothing, quietly), and the patched UNet computes what diffusers
computes with the LoRA merged into the same weights, which differs from the base UNet."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from emotion_core.cli import main
from emotion_core.testing.preference_assets import write_colour_pairs
from helpers.sd15_width_pipeline import UNET_4CH, write_sd15_width_pipeline

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
    pytest.mark.usefixtures("one_torch_thread"),
]
pytest.importorskip("peft")
TOLERANCE = 1e-3
RES = 32


def _comfy_eps(patcher, noisy, context, t: int) -> torch.Tensor:
    """ComfyUI's epsilon for the DDPM-scale latent ``noisy`` at timestep ``t`` (its own apply_model)."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([patcher])
    model = patcher.model
    sigma = model.model_sampling.sigma(torch.tensor([float(t)]))
    x = noisy * (sigma**2 + 1).sqrt()
    return (x - model.apply_model(x, sigma, c_crossattn=context)) / sigma


def _merged(state: dict, lora: dict, unet_names) -> dict:
    """The diffusers UNet weights with W += alpha/rank * up @ down for every LoRA module."""
    by_key = {"lora_unet_" + name.replace(".", "_"): name for name in unet_names}
    merged = dict(state)
    for key in {k.split(".")[0] for k in lora}:
        down, up = lora[f"{key}.lora_down.weight"], lora[f"{key}.lora_up.weight"]
        weight = f"{by_key[key]}.weight"
        merged[weight] = state[weight] + float(lora[f"{key}.alpha"]) / down.shape[0] * (up @ down)
    return merged


def test_trained_lora_loads_in_comfyui_and_changes_the_unet(tiny_sd_pipeline, tmp_path, caplog):
    import comfy.sd
    import folder_paths
    import nodes
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    from emotion_core.diffusers_to_ldm import unet_to_ldm

    files = write_sd15_width_pipeline(tiny_sd_pipeline, tmp_path / "sd15w")
    data = write_colour_pairs(tmp_path / "data", pairs=2, size=RES)
    loras = tmp_path / "loras"
    loras.mkdir()
    out = loras / "emotion_dpo.safetensors"
    assert main(["train-dpo", "--data", str(data), "--base", str(files["pipeline"]), "--adapter",
                 str(files["adapter_base"]), "--out", str(out), "--train", "unet-lora", "--lora-rank", "2",
                 "--steps", "2", "--lr", "1e-2", "--resolution", str(RES), "--beta", "500", "--cache-latents", "off",
                 "--log-with", "none", "--no-progress"]) == 0
    lora = load_file(str(out))

    patcher = comfy.sd.load_diffusion_model_state_dict(unet_to_ldm(files["unet_state"]))
    assert type(patcher.model.model_config).__name__ == "SD15"
    folder_paths.add_model_folder_path("loras", str(loras))
    with caplog.at_level(logging.WARNING):
        (patched,) = nodes.LoraLoaderModelOnly().load_lora_model_only(patcher, out.name, 1.0)
    assert not [r.message for r in caplog.records if "lora key not loaded" in r.message]
    assert len(patched.patches) == len(lora) // 3  # one weight patch per LoRA module

    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 4, RES // 8, RES // 8, generator=generator)
    context = torch.randn(1, 77, 768, generator=generator)
    with torch.no_grad():
        base = _comfy_eps(patcher, noisy, context, 500)
        with_lora = _comfy_eps(patched, noisy, context, 500)
        unet = UNet2DConditionModel(**UNET_4CH)
        names = [name for name, _ in unet.named_modules()]
        unet.load_state_dict(_merged(files["unet_state"], lora, names))
        expected = unet.eval()(noisy, 500, encoder_hidden_states=context).sample
    assert (with_lora - expected).abs().max() <= TOLERANCE
    assert (with_lora - base).abs().max() > 10 * TOLERANCE, "the LoRA did not change the UNet"
