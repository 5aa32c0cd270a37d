"""Tiny random-weight critic files in the real layouts: two open_clip CLIP models
(512-d and 768-d features, like ViT-B/32 and ViT-L/14), EmoGen and EmoEdit probe
heads on them, and a full-size EmoEditor ResNet-18 (it is small enough)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..taxonomy import EMOEDITOR_ORDER, EMOTIONS, NUM_EMOTIONS
from ..weights import save_safetensors


def tiny_clip_config(embed_dim: int, patch_size: int, layers: int) -> dict[str, Any]:
    """An open_clip CLIP config small enough for tests, with CLIP's real tokenizer sizes."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": layers, "width": 32, "head_width": 16, "patch_size": patch_size},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


def _seeded_state(seed: int, build: Callable[[], nn.Module]) -> dict[str, torch.Tensor]:
    """The state dict of a freshly initialised module, without touching the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dict(build().state_dict())


def _clip_state(config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    import open_clip

    return _seeded_state(seed, lambda: open_clip.model.CLIP(**config))


def _head(layout: str, width: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        head = nn.Module()
        if layout == "emoedit":
            head.hidden = nn.Linear(width, 256)
            head.fc = nn.Linear(256, NUM_EMOTIONS)
        else:
            head.fc = nn.Linear(width, NUM_EMOTIONS)
        return head

    return build


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=NUM_EMOTIONS)


def write_test_critics(models_dir: Path, names: dict[str, str], seed: int = 0) -> dict[str, Path]:
    """Write the five critic files named in ``names`` under ``models_dir``; role -> path."""
    models_dir = Path(models_dir)
    paths = {role: models_dir / names[role] for role in
             ("critic_clip_b32", "critic_clip_l14", "critic_emogen", "critic_emoedit", "critic_emoeditor")}
    written: dict[str, Path] = {}
    clips = {"critic_clip_b32": tiny_clip_config(512, 16, 1), "critic_clip_l14": tiny_clip_config(768, 8, 2)}
    for offset, (role, config) in enumerate(clips.items()):
        meta = {"kind": "clip_zero_shot", "open_clip_config": config, "random_weights": True}
        written[role] = save_safetensors(_clip_state(config, seed + offset), paths[role], meta)
    probes = {"critic_emogen": ("emogen", 768, "critic_clip_l14"), "critic_emoedit": ("emoedit", 512, "critic_clip_b32")}
    for offset, (role, (layout, width, backbone)) in enumerate(probes.items(), start=2):
        meta = {
            "kind": "clip_probe",
            "layout": layout,
            "backbone_file": os.path.relpath(paths[backbone], paths[role].parent),
            "class_order": list(EMOTIONS),
            "random_weights": True,
        }
        written[role] = save_safetensors(_seeded_state(seed + offset, _head(layout, width)), paths[role], meta)
    meta = {"kind": "emoeditor_resnet18", "class_order": list(EMOEDITOR_ORDER), "random_weights": True}
    written["critic_emoeditor"] = save_safetensors(_seeded_state(seed + 4, _resnet18), paths["critic_emoeditor"], meta)
    return written
