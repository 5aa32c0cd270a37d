"""Feature extractors for bank building and retrieval.

Text: the open_clip text tower of a CLIP file (a CLIP zero-shot critic file is
one). Images, every encoder giving ``features(pixels) -> {feature name: tensor}`` for
pixels ``[B, 3, S, S]`` in 0..1 already cropped to its ``image_size``:

- ``clip``: that file's CLIP image tower (its output is what IP-Adapter's base projection
  reads as ``image_embeds`` when the file is the adapter's CLIP, e.g. ViT-H/14);
- ``dino``: a DINOv2 ViT from a local transformers folder (pooled);
- ``clip-vision``: a transformers CLIPVisionModelWithProjection folder (IP-Adapter's
  ``image_encoder``), giving ``image_embeds`` and ``penultimate_hidden_states`` (plus adapters).

Another feature space (e.g. SigLIP for Flux Redux) is one more class with these three
members plus a bank kind in ``store.BANK_KINDS`` naming its feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..critics.clip_backbone import ClipPreprocess, build_clip, clip_config, is_open_clip_state, make_preprocess, make_tokenizer
from ..errors import InvalidInputError, ModelFormatError
from ..images import to_nchw
from ..weights import load_state_dict, read_metadata

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_ENCODERS = ("clip", "dino")


@dataclass
class OpenClipFile:
    """A CLIP model built from an open_clip file, with its preprocessing."""

    path: Path
    model: nn.Module
    preprocess: ClipPreprocess


def load_open_clip(path: str | Path) -> OpenClipFile:
    path = Path(path)
    state = load_state_dict(path)
    if not is_open_clip_state(state):
        raise ModelFormatError(f"{path.name}: not an open_clip CLIP file with both towers (e.g. a CLIP zero-shot "
                               "critic file); the bank needs its text tower")
    metadata = read_metadata(path)
    config = clip_config(state, path, metadata)
    return OpenClipFile(path, build_clip(state, config, path), make_preprocess(config, path, metadata))


class ClipTextEncoder:
    """Texts -> L2-normalised CLIP text features ``[N, D]``."""

    def __init__(self, model: nn.Module, batch_size: int = 64):
        self.model, self.batch_size = model, batch_size
        self.tokenizer = make_tokenizer(model.context_length)
        self.dim = int(model.text_projection.shape[1])

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            raise InvalidInputError("no texts to encode")
        rows = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start:start + self.batch_size]))
            rows.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        return torch.cat(rows)


class PooledImageEncoder:
    """Pooled image features ``[B, dim]`` (not normalised: the adapter's projection reads raw
    features), under the feature name ``image_embeds``."""

    def __init__(self, kind: str, name: str, network: nn.Module, preprocess: ClipPreprocess, dim: int, feature: str):
        self.kind, self.name, self.network, self.preprocess = kind, name, network.eval(), preprocess
        self.dim, self.feature = dim, feature

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @torch.no_grad()
    def features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.network(self.preprocess(pixels))
        if self.kind == "dino":
            out = out.pooler_output
        return {"image_embeds": out.float()}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[B,H,W,3]`` -> ``[B, dim]``."""
        return self.features(to_nchw(images))["image_embeds"]

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "dim": self.dim, "feature": self.feature}


class ClipVisionFeatureEncoder:
    """IP-Adapter's CLIP vision model: ``image_embeds [B, D]`` and ``penultimate_hidden_states
    [B, T, H]``, what ComfyUI's CLIP_VISION gives base and plus adapters."""

    def __init__(self, encoder, name: str):
        self.encoder, self.name = encoder, name  # a pipeline.visual.ClipVisionEncoder
        config = self.encoder.model.config
        self.dim, self.hidden_dim = int(config.projection_dim), int(config.hidden_size)

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    @torch.no_grad()
    def features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.encoder.model
        out = model(pixel_values=self.encoder.preprocess(pixels).to(model.device, model.dtype),
                    output_hidden_states=True)
        return {"image_embeds": out.image_embeds.float(), "penultimate_hidden_states": out.hidden_states[-2].float()}

    def describe(self) -> dict:
        return {"kind": "clip-vision", "name": self.name, "dim": self.dim, "hidden_dim": self.hidden_dim,
                "feature": "image_embeds+penultimate_hidden_states"}


def clip_vision_encoder(folder: str | Path) -> ClipVisionFeatureEncoder:
    """IP-Adapter's ``image_encoder`` folder (transformers layout), read locally."""
    from ..pipeline.visual import load_image_encoder

    return ClipVisionFeatureEncoder(load_image_encoder(folder), Path(folder).name)


def clip_image_encoder(clip: OpenClipFile) -> PooledImageEncoder:
    dim = int(clip.model.visual.output_dim)
    return PooledImageEncoder("clip", clip.path.name, clip.model.visual, clip.preprocess, dim, "image_embeds")


def load_local_pretrained(model_class, folder: Path, what: str):
    """``model_class.from_pretrained`` on a local ``save_pretrained`` folder, never a download; a clear
    error naming the folder and ``what`` was expected in it."""
    if not (folder / "config.json").is_file():
        raise ModelFormatError(f"{folder}: not a transformers model folder (no config.json); pass the folder "
                               f"{what} was saved to with save_pretrained")
    try:
        return model_class.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{folder}: cannot load {what} ({exc})") from exc


def dino_image_encoder(folder: str | Path) -> PooledImageEncoder:
    """A transformers ``Dinov2Model`` saved with ``save_pretrained``; read locally, never downloaded."""
    from transformers import Dinov2Model

    folder = Path(folder)
    model = load_local_pretrained(Dinov2Model, folder, "a Dinov2Model")
    size = model.config.image_size
    preprocess = ClipPreprocess(size, IMAGENET_MEAN, IMAGENET_STD)
    return PooledImageEncoder("dino", folder.name, model, preprocess, int(model.config.hidden_size), "pooler_output")


def load_text_encoder(path: str | Path) -> ClipTextEncoder:
    """Only the text tower of an open_clip file is kept (retrieval never encodes images)."""
    clip = load_open_clip(path)
    clip.model.visual = nn.Identity()
    return ClipTextEncoder(clip.model)
