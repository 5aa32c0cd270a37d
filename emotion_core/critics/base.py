"""The one interface every emotion critic implements."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..images import to_nchw
from ..taxonomy import EMOTIONS, parse_class_order, remap_to_canonical


class EmotionCritic(nn.Module):
    """Batch of IMAGE tensors ``[B,H,W,C]`` in 0..1 -> probabilities ``[B,8]`` in canonical order.

    Subclasses implement ``preprocess`` (tensor ops only, batched) and ``logits``
    (scores in ``class_order``); this class validates input, remaps the class
    order and applies the softmax once, so every critic behaves the same.
    """

    kind: str = "critic"

    def __init__(self, class_order: Sequence[str] = EMOTIONS):
        super().__init__()
        self.class_order = parse_class_order(class_order)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` RGB in 0..1 -> the backbone's input tensor."""
        raise NotImplementedError

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch -> unnormalised scores ``[B,8]`` in ``self.class_order``."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = to_nchw(images).to(self.device, self.dtype)
        scores = self.logits(self.preprocess(pixels)).float()
        return remap_to_canonical(scores.softmax(dim=-1), self.class_order)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Probabilities for any number of images, ``batch_size`` at a time, on CPU."""
        chunks = [self(images[i : i + batch_size]).cpu() for i in range(0, images.shape[0], batch_size)]
        return torch.cat(chunks, dim=0)

    def describe(self) -> dict:
        """What the critic is, for reports and PNG metadata."""
        return {"kind": self.kind, "class_order": list(self.class_order)}
