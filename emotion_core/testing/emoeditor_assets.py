"""Random-weight stand-ins for EmoEditor's three released files, in upstream's exact
layouts and dtypes: ``torch.save``'d state dicts, so tests take the path a user
takes with the real downloads (convert, then ComfyUI or the CLI).

- ``model_ip2p.pt``: fp16, ``unet.*`` = diffusers ``UNet2DConditionModel`` with 8
  input channels, ``auto_encoder.*`` = diffusers ``AutoencoderKL`` (upstream halves
  its InstructPix2Pix module before saving). The UNet has SD1.5's widths (320
  channels, context 768, 8 heads), which ComfyUI's model detection needs to call
  it SD1.5 InstructPix2Pix once converted, but is shallow: two levels of 320
  channels, one res block and one transformer each (44M parameters instead of
  860M). The VAE keeps SD1.5's full shapes (84M) because ComfyUI builds its VAE
  from a fixed config.
- ``model_emoenc.pt``: fp32 (upstream never halves the encoder), ``fc.0/2/4/6``.
- ``emo_predictor.pt``: fp32 torchvision ResNet-18 with ``fc`` 512 -> 8, batch-norm
  buffers included.

``convert_emoeditor_release`` then converts them as the README tells a user to.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Mapping

import torch

from ..atomic import temp_beside
from ..emoeditor_release import UNET_PREFIX, VAE_PREFIX
from ..emotion_encoder import expected_shapes as encoder_shapes
from ..pipeline.sd15_configs import NORM_GROUPS, UNET_HEADS

RELEASE_ROLES = ("emoeditor_release_ip2p", "emoeditor_release_encoder", "emoeditor_release_predictor")
# What the README's "Reproduce EmoEditor" convert commands make of them: the files the
# emoeditor_edit workflow loads.
CONVERTED_ROLES = ("emoeditor_unet", "emoeditor_vae", "emoeditor_encoder", "emoeditor_critic")
UNET_CONFIG = {
    "sample_size": 64, "in_channels": 8, "out_channels": 4, "block_out_channels": (320, 320), "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768, "attention_head_dim": UNET_HEADS, "norm_num_groups": NORM_GROUPS,
}
VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": NORM_GROUPS, "sample_size": 256,
}


def _torch_save(state: Mapping[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(path) as tmp:
        torch.save(dict(state), tmp)
        tmp.replace(path)
    return path


def _generator(seed: int, role: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{role}:{seed}".encode()))


def random_state(module: torch.nn.Module, generator: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random tensors for ``module``'s state dict (it may live on the meta device): matrices
    and kernels N(0, 1/fan_in), norm weights 1 + N(0, 0.02^2), biases N(0, 0.02^2). No tensor
    is constant, so a tensor loaded into the wrong place changes the outputs."""
    state = {}
    for key, ref in module.state_dict().items():
        std = ref[0].numel() ** -0.5 if ref.ndim > 1 else 0.02
        tensor = torch.empty(ref.shape).normal_(0.0, std, generator=generator)
        if ref.ndim == 1 and key.endswith(".weight"):
            tensor += 1.0
        state[key] = tensor.to(dtype)
    return state


def release_ip2p_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The ``model_ip2p.pt`` tensors: fp16 ``unet.*`` and ``auto_encoder.*``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**UNET_CONFIG), AutoencoderKL(**VAE_CONFIG)
    state = {UNET_PREFIX + k: v for k, v in random_state(unet, _generator(seed, "release_unet"), torch.float16).items()}
    state.update({VAE_PREFIX + k: v for k, v in random_state(vae, _generator(seed, "release_vae"), torch.float16).items()})
    return state


def _encoder_state(seed: int) -> dict[str, torch.Tensor]:
    generator = _generator(seed, "release_encoder")
    return {key: torch.randn(shape, generator=generator) / (shape[-1] ** 0.5)
            for key, shape in encoder_shapes().items()}


def _predictor_state(seed: int) -> dict[str, torch.Tensor]:
    from ..critics.resnet_predictor import build_resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_generator(seed, "release_predictor").initial_seed())
        return dict(build_resnet18().state_dict())


def write_emoeditor_release(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """Write the three files at ``names[role]`` (roles ``RELEASE_ROLES``) under ``models_dir``;
    role -> path. Deterministic for a seed."""
    models_dir = Path(models_dir)
    ip2p, encoder, predictor = RELEASE_ROLES
    return {
        ip2p: _torch_save(release_ip2p_state(seed), models_dir / names[ip2p]),
        encoder: _torch_save(_encoder_state(seed), models_dir / names[encoder]),
        predictor: _torch_save(_predictor_state(seed), models_dir / names[predictor]),
    }


def convert_emoeditor_release(models_dir: str | Path, names: Mapping[str, str]) -> dict[str, Path]:
    """Convert the three files (``RELEASE_ROLES``) to ``CONVERTED_ROLES`` under ``models_dir``,
    as the README's ``emotion-director convert`` commands do; role -> path."""
    from ..conversion import convert_weights

    models_dir = Path(models_dir)
    ip2p, encoder, predictor = (models_dir / names[role] for role in RELEASE_ROLES)
    unet, vae, encoder_out, critic = (models_dir / names[role] for role in CONVERTED_ROLES)
    convert_weights(ip2p, unet, {"converted_from": ip2p.name}, vae_out=vae)
    convert_weights(encoder, encoder_out, {"converted_from": encoder.name})
    convert_weights(predictor, critic, {"converted_from": predictor.name})
    return dict(zip(CONVERTED_ROLES, (unet, vae, encoder_out, critic)))
