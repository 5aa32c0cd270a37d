"""EmoEditor's emotion encoder: an MLP 8 -> 256 -> 512 -> 768 -> 77*768 mapping an
emotion direction to cross-attention tokens for an InstructPix2Pix UNet.

The module layout (``fc.0``, ``fc.2``, ``fc.4``, ``fc.6``) matches the released
checkpoint, so its state dict loads unchanged. Its input is in EmoEditor's
alphabetical class order unless the file's metadata declares another.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .direction import EmotionDirection
from .errors import ModelFormatError
from .taxonomy import EMOEDITOR_ORDER, parse_class_order
from .weights import load_state_dict, read_metadata

TOKENS, WIDTH = 77, 768
LAYER_SIZES = (8, 256, 512, 768, TOKENS * WIDTH)


class EmotionEncoder(nn.Module):
    def __init__(self, class_order=EMOEDITOR_ORDER):
        super().__init__()
        self.class_order = parse_class_order(class_order)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(LAYER_SIZES) - 2:
                layers.append(nn.ReLU())
        self.fc = nn.Sequential(*layers)

    def forward(self, direction: torch.Tensor) -> torch.Tensor:
        """``[B,8]`` (or ``[8]``) direction in ``class_order`` -> ``[B,77,768]`` tokens."""
        return self.fc(direction.reshape(-1, LAYER_SIZES[0])).view(-1, TOKENS, WIDTH)

    @torch.no_grad()
    def encode(self, direction: EmotionDirection) -> torch.Tensor:
        weight = self.fc[0].weight
        vector = direction.in_order(self.class_order).to(weight.device, weight.dtype)
        return self(vector)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (n_in, n_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])):
        shapes[f"fc.{2 * i}.weight"] = (n_out, n_in)
        shapes[f"fc.{2 * i}.bias"] = (n_out,)
    return shapes


def load_emotion_encoder(path: str | os.PathLike, device="cpu", dtype=torch.float32) -> EmotionEncoder:
    """Load a released (``.pt``, weights only) or converted (``.safetensors``) encoder."""
    state = load_state_dict(path)
    expected = expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFormatError(
            f"{os.path.basename(path)} is not an EmoEditor emotion encoder: "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}; expected keys {sorted(expected)}"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ModelFormatError(
                f"{os.path.basename(path)}: {key} has shape {tuple(state[key].shape)}, expected {shape} "
                "(EmoEditor encoder MLP 8->256->512->768->77*768)"
            )
    meta = read_metadata(path)
    encoder = EmotionEncoder(meta.get("class_order", EMOEDITOR_ORDER))
    encoder.load_state_dict({k: v.float() for k, v in state.items()})
    return encoder.to(device=device, dtype=dtype).eval()
