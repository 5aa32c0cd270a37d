"""EmoEditor's three released files, told apart by their keys, and ``model_ip2p.pt``
split into the diffusers state dicts it holds.

- ``model_ip2p.pt``: ``torch.save`` of upstream's InstructPix2Pix module state dict
  (fp16): ``unet.*`` is a diffusers ``UNet2DConditionModel`` (8 input channels: the
  noisy latent and the source image's latent), ``auto_encoder.*`` a diffusers
  ``AutoencoderKL``.
- ``model_emoenc.pt``: the emotion encoder MLP (``fc.0/2/4/6``, 8 -> 256 -> 512 -> 768
  -> 77*768).
- ``emo_predictor.pt``: torchvision ResNet-18 with ``fc`` 512 -> 8.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from .critics.resnet_predictor import is_resnet_state
from .critics.state_dicts import preview
from .diffusers_to_ldm import UNET_MARKERS, VAE_MARKERS
from .emotion_encoder import expected_shapes as encoder_shapes
from .errors import ModelFormatError
from .taxonomy import NUM_EMOTIONS
from .weights import load_state_dict

IP2P = "model_ip2p"
ENCODER = "model_emoenc"
PREDICTOR = "emo_predictor"
UNET_PREFIX = "unet."
VAE_PREFIX = "auto_encoder."
EXPECTED = (
    f"{IP2P}.pt: unet.* (diffusers UNet2DConditionModel) + auto_encoder.* (diffusers AutoencoderKL); "
    f"{ENCODER}.pt: fc.0/fc.2/fc.4/fc.6 .weight/.bias (MLP 8->256->512->768->77*768); "
    f"{PREDICTOR}.pt: torchvision ResNet-18 keys with fc.weight [8, 512]"
)


def _halves(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    unet, vae, other = {}, {}, []
    for key, tensor in state.items():
        if key.startswith(UNET_PREFIX):
            unet[key[len(UNET_PREFIX):]] = tensor
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX):]] = tensor
        else:
            other.append(key)
    return unet, vae, other


def _ip2p_problems(state: Mapping[str, torch.Tensor]) -> list[str]:
    unet, vae, other = _halves(state)
    problems = [f"keys outside unet./auto_encoder.: {preview(other, 3)}"] if other else []
    missing = [UNET_PREFIX + k for k in UNET_MARKERS if k not in unet] + [VAE_PREFIX + k for k in VAE_MARKERS if k not in vae]
    return problems + ([f"missing {preview(missing, 3)}"] if missing else [])


def _encoder_problems(state: Mapping[str, torch.Tensor]) -> list[str]:
    shapes = encoder_shapes()
    problems = [f"missing {preview(set(shapes) - set(state), 3)}"] if set(shapes) - set(state) else []
    if set(state) - set(shapes):
        problems.append(f"unexpected {preview(set(state) - set(shapes), 3)}")
    return problems + [f"{key} has shape {list(state[key].shape)}, expected {list(shape)}"
                       for key, shape in shapes.items() if key in state and tuple(state[key].shape) != shape]


def _predictor_problems(state: Mapping[str, torch.Tensor]) -> list[str]:
    if not is_resnet_state(state):
        return ["not torchvision ResNet-18 keys (conv1.weight, layer4.1.bn2.weight, fc.weight)"]
    shape = tuple(state["fc.weight"].shape)
    return [] if shape == (NUM_EMOTIONS, 512) else [f"fc.weight has shape {list(shape)}, expected [8, 512]"]


# name -> (problems, "does the state look like an attempt at this layout")
_LAYOUTS = {
    IP2P: (_ip2p_problems, lambda state: any(k.startswith((UNET_PREFIX, VAE_PREFIX)) for k in state)),
    ENCODER: (_encoder_problems, lambda state: any(k.startswith("fc.") for k in state) and "conv1.weight" not in state),
    PREDICTOR: (_predictor_problems, lambda state: "conv1.weight" in state),
}


def near_misses(state: Mapping[str, torch.Tensor]) -> list[str]:
    """For each released layout ``state`` looks like an attempt at: why it is not that file."""
    return [f"as {name}.pt: {'; '.join(problems)}" for name, (problems_of, resembles) in _LAYOUTS.items()
            if resembles(state) and (problems := problems_of(state))]


def identify_release_file(state: Mapping[str, torch.Tensor], source: str) -> str:
    """Which released file ``state`` is: ``IP2P``, ``ENCODER`` or ``PREDICTOR``; a
    ModelFormatError naming what was found (``source`` is the file name) otherwise."""
    for name, (problems_of, _) in _LAYOUTS.items():
        if not problems_of(state):
            return name
    near = "".join(f"; {miss}" for miss in near_misses(state))
    raise ModelFormatError(
        f"{source}: not one of EmoEditor's released files; found {len(state)} tensors ({preview(state)}){near}; "
        f"expected one of: {EXPECTED}"
    )


def split_ip2p(state: Mapping[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``model_ip2p.pt``'s tensors -> (diffusers UNet state dict, diffusers VAE state dict),
    prefixes removed, dtypes kept (the release is fp16)."""
    found = identify_release_file(state, source)
    if found != IP2P:
        raise ModelFormatError(f"{source} is EmoEditor's {found}.pt (by its keys), not {IP2P}.pt")
    unet, vae, _ = _halves(state)
    return unet, vae


def read_ip2p(path: str | os.PathLike, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The (UNet, VAE) diffusers state dicts of a released ``model_ip2p.pt`` (read with
    ``weights_only=True`` unless ``trust_pickle``)."""
    path = Path(path)
    return split_ip2p(load_state_dict(path, trust_pickle=trust_pickle), path.name)
