"""Converted files in the real ComfyUI (COMFYUI_PATH): ComfyUI only warns about missing or
unexpected keys, so a wrong mapping would load and compute garbage quietly. The UNet and VAE
the README's convert commands write are loaded with ComfyUI's own loaders (what UNETLoader and
VAELoader call) and must compute what diffusers computes on the same weights (fp32, 1e-3)."""

from __future__ import annotations

import os

import pytest
import torch

from emotion_core.emoeditor_release import read_ip2p
from emotion_core.testing.emoeditor_assets import UNET_CONFIG, VAE_CONFIG, random_state

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
    pytest.mark.usefixtures("one_torch_thread"),
]
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def released_halves(emoeditor_release_files):
    return read_ip2p(emoeditor_release_files["emoeditor_release_ip2p"])


def _diffusers(cls, config: dict, state: dict):
    model = cls(**config)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def _comfy_eps(patcher, noisy: torch.Tensor, image_latent: torch.Tensor | None, context: torch.Tensor, t: int):
    """ComfyUI's epsilon for the DDPM-scale latent ``noisy`` at timestep ``t``, through the
    model's own apply_model (input scaling, InstructPix2Pix concat, denoised output)."""
    model = patcher.model
    sigma = model.model_sampling.sigma(torch.tensor([float(t)]))
    assert model.model_sampling.timestep(sigma).item() == t
    x = noisy * (sigma**2 + 1).sqrt()  # k-diffusion scale, what samplers pass in
    denoised = model.apply_model(x, sigma, c_concat=image_latent, c_crossattn=context)
    return (x - denoised) / sigma


def _inputs(channels: int = 4):
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, channels, 8, 8, generator=generator)
    image_latent = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, 768, generator=generator)
    return noisy, image_latent, context


def test_converted_emoeditor_unet_is_sd15_instructpix2pix_and_computes_like_diffusers(
        emoeditor_converted_files, released_halves, record_property):
    import comfy.model_base
    import comfy.sd
    from diffusers import UNet2DConditionModel

    patcher = comfy.sd.load_diffusion_model(str(emoeditor_converted_files["emoeditor_unet"]))  # as UNETLoader does
    assert type(patcher.model.model_config).__name__ == "SD15_instructpix2pix"
    assert isinstance(patcher.model, comfy.model_base.SD15_instructpix2pix)
    assert patcher.model.diffusion_model.input_blocks[0][0].weight.dtype == torch.float32  # CPU: upcast
    reference = _diffusers(UNet2DConditionModel, UNET_CONFIG, released_halves[0])
    noisy, image_latent, context = _inputs()
    with torch.no_grad():
        expected = reference(torch.cat([noisy, image_latent], 1), 500, encoder_hidden_states=context).sample
        got = _comfy_eps(patcher, noisy, image_latent, context, 500)
    difference = (got - expected).abs().max().item()
    record_property("unet_max_abs_diff", difference)
    assert difference <= TOLERANCE and expected.abs().max() > 0.1


def test_converted_emoeditor_vae_decodes_and_encodes_like_diffusers(emoeditor_converted_files, released_halves,
                                                                     record_property):
    import comfy.sd
    import comfy.utils
    from diffusers import AutoencoderKL

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(emoeditor_converted_files["emoeditor_vae"])))  # as VAELoader
    reference = _diffusers(AutoencoderKL, VAE_CONFIG, released_halves[1])
    generator = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 4, 8, 8, generator=generator)
    pixels = torch.rand(1, 64, 64, 3, generator=generator)
    with torch.no_grad():
        decoded = ((reference.decode(latent).sample + 1) / 2).clamp(0, 1).movedim(1, -1)
        encoded = reference.encode(pixels.movedim(-1, 1) * 2 - 1).latent_dist.mode()
        decode_difference = (vae.decode(latent).float() - decoded).abs().max().item()
        encode_difference = (vae.encode(pixels).float() - encoded).abs().max().item()
    record_property("vae_decode_max_abs_diff", decode_difference)
    record_property("vae_encode_max_abs_diff", encode_difference)
    assert decode_difference <= TOLERANCE and encode_difference <= TOLERANCE
    assert decoded.std() > 0.01 and encoded.abs().max() > 0.1


def test_converted_diffusers_unet_with_4_channels_is_sd15(tmp_path, record_property):
    import comfy.model_base
    import comfy.sd
    from diffusers import UNet2DConditionModel

    from emotion_core.cli import main
    from emotion_core.weights import save_safetensors

    config = {**UNET_CONFIG, "in_channels": 4}
    with torch.device("meta"):
        shape = UNet2DConditionModel(**config)
    state = random_state(shape, torch.Generator().manual_seed(3), torch.float16)
    source = save_safetensors(state, tmp_path / "diffusion_pytorch_model.safetensors")  # diffusers keys
    assert main(["convert", str(source), str(tmp_path / "unet.safetensors")]) == 0
    patcher = comfy.sd.load_diffusion_model(str(tmp_path / "unet.safetensors"))
    assert type(patcher.model.model_config).__name__ == "SD15"
    assert not isinstance(patcher.model, comfy.model_base.SD15_instructpix2pix)
    noisy, _, context = _inputs()
    with torch.no_grad():
        expected = _diffusers(UNet2DConditionModel, config, state)(noisy, 250, encoder_hidden_states=context).sample
        got = _comfy_eps(patcher, noisy, None, context, 250)
    difference = (got - expected).abs().max().item()
    record_property("unet4_max_abs_diff", difference)
    assert difference <= TOLERANCE and expected.abs().max() > 0.1
