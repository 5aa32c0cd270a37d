"""One entry point for every critic file: read metadata, tell the kind (from
metadata or from the tensors), build the critic, move it to the device."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import InvalidInputError, ModelFormatError
from ..taxonomy import EMOEDITOR_ORDER, EMOTIONS
from ..weights import load_state_dict, read_metadata
from .base import EmotionCritic
from .clip_backbone import has_image_tower, is_open_clip_state
from .clip_probe import ClipProbeCritic, is_head_state
from .clip_zero_shot import ClipZeroShotCritic
from .resnet_predictor import EmoEditorResNetCritic, is_resnet_state
from .state_dicts import preview

log = logging.getLogger(__name__)

CRITIC_CLASSES: dict[str, type[EmotionCritic]] = {
    cls.kind: cls for cls in (ClipZeroShotCritic, ClipProbeCritic, EmoEditorResNetCritic)
}
EXPECTED_LAYOUTS = (
    "emoeditor_resnet18: torchvision ResNet-18 keys (conv1.weight, layer4.1.bn2.weight, fc.weight [8, 512]); "
    "clip_zero_shot: open_clip CLIP keys (visual.*, token_embedding.weight, transformer.*, text_projection, logit_scale); "
    "clip_probe: a head with fc.weight/fc.bias (EmoGen) or hidden.*/fc.* (EmoEdit) plus backbone_file metadata"
)


def critic_metadata_template(kind: str) -> dict[str, Any]:
    """An example sidecar JSON for a critic kind, for error messages and docs."""
    templates = {
        "clip_zero_shot": {"kind": "clip_zero_shot", "open_clip_model": "ViT-L-14", "quick_gelu": True},
        "clip_probe": {"kind": "clip_probe", "layout": "emogen", "backbone_file": "clip_vit_l14.safetensors",
                       "class_order": list(EMOTIONS), "normalize_features": False},
        "emoeditor_resnet18": {"kind": "emoeditor_resnet18", "class_order": list(EMOEDITOR_ORDER)},
    }
    if kind not in templates:
        raise InvalidInputError(f"unknown critic kind {kind!r}; expected one of {sorted(templates)}")
    return templates[kind]


def detect_kind(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """The critic kind a state dict's keys belong to; a ModelFormatError saying what was found otherwise."""
    if is_resnet_state(state):
        return EmoEditorResNetCritic.kind
    if is_open_clip_state(state):
        return ClipZeroShotCritic.kind
    if is_head_state(state):
        return ClipProbeCritic.kind
    if has_image_tower(state):
        raise ModelFormatError(
            f"{path.name} holds only a CLIP image tower: it can be a probe's backbone_file, not a critic by itself"
        )
    raise ModelFormatError(
        f"{path.name}: not a critic layout this project reads; found {len(state)} tensors ({preview(state)}); "
        f"expected one of: {EXPECTED_LAYOUTS}"
    )


def _kind(state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], path: Path) -> str:
    kind = metadata.get("kind")
    if kind is None:
        return detect_kind(state, path)
    if kind not in CRITIC_CLASSES:
        raise ModelFormatError(f"{path.name}: metadata kind {kind!r} is not a critic; expected one of {sorted(CRITIC_CLASSES)}")
    return kind


def load_critic(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> EmotionCritic:
    """A ready-to-use critic (eval mode, on ``device`` in ``dtype``) from a weight file and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"critic file not found: {path}")
    metadata = read_metadata(path)
    state = load_state_dict(path)
    kind = _kind(state, metadata, path)
    try:
        critic = CRITIC_CLASSES[kind].from_state(state, metadata, path)
    except ModelFormatError:
        raise
    except InvalidInputError as exc:  # e.g. a bad class_order in the metadata
        raise ModelFormatError(f"{path.name}: {exc}; a valid sidecar looks like "
                               f"{json.dumps(critic_metadata_template(kind))}") from exc
    log.info("loaded %s critic from %s", kind, path)
    return critic.to(device=device, dtype=dtype).eval()
