"""EmoEditor's emotion predictor: torchvision ResNet-18 with an 8-way ``fc``.

It was trained on 224x224 inputs in 0..1 without ImageNet normalisation and
outputs classes in alphabetical order; both are reproduced here exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..images import resize_exact
from ..taxonomy import EMOEDITOR_ORDER, NUM_EMOTIONS
from .base import EmotionCritic
from .state_dicts import load_into

INPUT_SIZE = 224


def is_resnet_state(state: Mapping[str, torch.Tensor]) -> bool:
    return "layer4.1.bn2.weight" in state and "conv1.weight" in state and "fc.weight" in state


def build_resnet18() -> nn.Module:
    """torchvision's ResNet-18, random init, with ``fc = Linear(512, 8)``."""
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=NUM_EMOTIONS)


class EmoEditorResNetCritic(EmotionCritic):
    """ResNet-18 on an exact 224x224 bilinear resize, no normalisation."""

    kind = "emoeditor_resnet18"

    def __init__(self, model: nn.Module, class_order: Sequence[str] = EMOEDITOR_ORDER):
        super().__init__(class_order)
        self.model = model

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], path: Path) -> "EmoEditorResNetCritic":
        model = build_resnet18()
        load_into(model, state, path.name)
        return cls(model.eval(), metadata.get("class_order", EMOEDITOR_ORDER))

    @property
    def gradcam_input_layer(self) -> nn.Module:
        """The last block of the last convolutional stage (``layer4[-1]``), whose activations
        GradCAM weighs, as in EmoEditor's metric."""
        return self.model.layer4[-1]

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        # Like torchvision Resize((224, 224)) on a PIL image: bilinear with antialiasing, in float32.
        return resize_exact(pixels.float(), INPUT_SIZE, mode="bilinear").to(pixels.dtype)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)
