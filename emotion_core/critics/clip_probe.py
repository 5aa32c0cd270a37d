"""CLIP linear-probe critics: a small head on a frozen CLIP image tower.

Two published layouts: EmoGen's ``fc`` (ViT-L/14 features -> 8) and EmoEdit's
``hidden`` -> ReLU -> ``fc`` (ViT-B/32 features -> 256 -> 8). The head file
names its backbone (an open_clip file in the same folder) in ``backbone_file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFormatError
from ..taxonomy import EMOTIONS, NUM_EMOTIONS
from ..weights import load_state_dict, read_metadata, resolve_inside
from .base import EmotionCritic
from .clip_backbone import ClipPreprocess, build_clip, clip_config, make_preprocess
from .state_dicts import load_into, preview

LAYOUTS = {
    "emogen": ("fc.weight", "fc.bias"),
    "emoedit": ("hidden.weight", "hidden.bias", "fc.weight", "fc.bias"),
}


def is_head_state(state: Mapping[str, torch.Tensor]) -> bool:
    return any(set(state) == set(keys) for keys in LAYOUTS.values())


def head_layout(state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], path: Path) -> str:
    """Metadata ``layout``, or the layout whose keys the file has."""
    layout = metadata.get("layout")
    if layout is None:
        layout = "emoedit" if "hidden.weight" in state else "emogen"
    if layout not in LAYOUTS:
        raise ModelFormatError(f"{path.name}: unknown probe layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    if set(state) != set(LAYOUTS[layout]):
        raise ModelFormatError(
            f"{path.name}: a {layout} head has exactly the keys {list(LAYOUTS[layout])}, found {preview(state)}"
        )
    return layout


def _linear(weight: torch.Tensor, name: str, path: Path) -> nn.Linear:
    if weight.ndim != 2:
        raise ModelFormatError(f"{path.name}: {name}.weight must be 2-D [out, in], got {list(weight.shape)}")
    return nn.Linear(weight.shape[1], weight.shape[0])


def build_head(state: Mapping[str, torch.Tensor], layout: str, path: Path) -> nn.Module:
    """The head as ``nn.Sequential`` (state-dict keys unchanged) with the file's weights."""
    fc = _linear(state["fc.weight"], "fc", path)
    if fc.out_features != NUM_EMOTIONS:
        raise ModelFormatError(f"{path.name}: fc has {fc.out_features} outputs, expected {NUM_EMOTIONS} emotions")
    if layout == "emogen":
        head = nn.Sequential()
        head.add_module("fc", fc)
    else:
        hidden = _linear(state["hidden.weight"], "hidden", path)
        if hidden.out_features != fc.in_features:
            raise ModelFormatError(
                f"{path.name}: hidden has {hidden.out_features} outputs but fc takes {fc.in_features} inputs"
            )
        head = nn.Sequential()
        head.add_module("hidden", hidden)
        head.add_module("relu", nn.ReLU())
        head.add_module("fc", fc)
    load_into(head, state, path.name)
    return head


def head_width(head: nn.Module) -> int:
    return head[0].in_features


def backbone_path(metadata: Mapping[str, Any], path: Path) -> Path:
    """``backbone_file`` resolved inside the probe's own folder."""
    name = metadata.get("backbone_file")
    if not isinstance(name, str) or not name:
        raise ModelFormatError(
            f"{path.name}: a probe head needs backbone_file, the open_clip image model it reads; add "
            f'{path.with_suffix(".json").name} with {{"kind": "clip_probe", "backbone_file": "clip_vit_l14.safetensors"}}'
        )
    resolved = resolve_inside(path.parent, name)
    if not resolved.is_file():
        raise ModelFormatError(f"{path.name}: backbone_file {name!r} not found in {path.parent}")
    return resolved


class ClipProbeCritic(EmotionCritic):
    """logits = head(CLIP image features); features L2-normalised only if the head was trained so."""

    kind = "clip_probe"

    def __init__(self, visual: nn.Module, preprocess: ClipPreprocess, head: nn.Module, layout: str,
                 class_order=EMOTIONS, normalize_features: bool = False):
        super().__init__(class_order)
        self.visual = visual
        self.image_preprocess = preprocess
        self.head = head
        self.layout = layout
        self.normalize_features = normalize_features

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], path: Path) -> "ClipProbeCritic":
        layout = head_layout(state, metadata, path)
        head = build_head(state, layout, path)
        backbone_file = backbone_path(metadata, path)
        backbone_meta = read_metadata(backbone_file)
        backbone_state = load_state_dict(backbone_file)
        config = clip_config(backbone_state, backbone_file, backbone_meta, metadata)
        if head_width(head) != config["embed_dim"]:
            raise ModelFormatError(
                f"{path.name}: the {layout} head takes {head_width(head)}-d features but its backbone "
                f"{backbone_file.name} gives {config['embed_dim']}-d features"
            )
        clip_model = build_clip(backbone_state, config, backbone_file, image_only=True)
        return cls(
            clip_model.visual,
            make_preprocess(config, path, metadata, backbone_meta),
            head,
            layout,
            metadata.get("class_order", EMOTIONS),
            bool(metadata.get("normalize_features", False)),
        )

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_preprocess(pixels)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.visual(inputs)
        if self.normalize_features:
            features = F.normalize(features, dim=-1)
        return self.head(features)

    def describe(self) -> dict:
        return {**super().describe(), "layout": self.layout, "image_size": self.image_preprocess.image_size,
                "normalize_features": self.normalize_features}
