"""A random-weight EmoEditor emotion encoder in the released layout (fp16 to halve
its ~180 MB)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..emotion_encoder import expected_shapes
from ..taxonomy import EMOEDITOR_ORDER
from ..weights import save_safetensors


def write_test_encoder(models_dir: Path, names: dict[str, str], seed: int = 0) -> dict[str, Path]:
    generator = torch.Generator().manual_seed(seed + 101)
    tensors = {}
    for key, shape in expected_shapes().items():
        fan_in = shape[1] if len(shape) == 2 else shape[0]
        tensors[key] = (torch.randn(shape, generator=generator) / fan_in**0.5).half()
    path = Path(models_dir) / names["emotion_encoder"]
    metadata = {"kind": "emoeditor_encoder", "class_order": list(EMOEDITOR_ORDER), "random_weights": True}
    return {"emotion_encoder": save_safetensors(tensors, path, metadata)}
