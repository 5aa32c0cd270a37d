"""open_clip CLIP models from files in open_clip's state-dict layout, described
by this project's metadata; plus CLIP's batched tensor preprocessing and tokenizer.

open_clip is imported inside functions: importing it takes seconds, and a
ComfyUI start-up or a ResNet critic should not pay for it.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import ModelFormatError
from ..images import resize_shorter_center_crop
from .state_dicts import load_into

log = logging.getLogger(__name__)

# Registry configs recognised from tensor shapes when a file has no metadata.
STANDARD_MODELS = ("ViT-B-32", "ViT-B-16", "ViT-L-14")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # = open_clip.constants.OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)  # = open_clip.constants.OPENAI_DATASET_STD
# Scalars that OpenAI's original checkpoints carry next to the tensors.
_OPENAI_SCALARS = frozenset({"input_resolution", "context_length", "vocab_size"})
# A near-empty text tower for models that only need the image tower (probe backbones).
_STUB_TEXT_CFG = {"context_length": 1, "vocab_size": 1, "width": 8, "heads": 1, "layers": 1, "mlp_ratio": 1}
_RESBLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.")


def is_open_clip_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Both towers of an open_clip CLIP model."""
    return "token_embedding.weight" in state and has_image_tower(state)


def has_image_tower(state: Mapping[str, torch.Tensor]) -> bool:
    return "visual.conv1.weight" in state and "visual.proj" in state


def _count_layers(state: Mapping[str, torch.Tensor], visual: bool) -> int:
    found = set()
    for key in state:
        match = _RESBLOCK.match(key)
        if match and bool(match.group(1)) == visual:
            found.add(int(match.group(2)))
    return len(found)


def _shape_signature(state: Mapping[str, torch.Tensor]) -> tuple:
    conv = state["visual.conv1.weight"].shape
    return (
        conv[0], conv[-1], state["visual.positional_embedding"].shape[0], _count_layers(state, True),
        state["token_embedding.weight"].shape[1], _count_layers(state, False),
        state["text_projection"].shape[1], state["positional_embedding"].shape[0],
    )


def _config_signature(cfg: Mapping[str, Any]) -> tuple:
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    grid = vision["image_size"] // vision["patch_size"]
    return (
        vision["width"], vision["patch_size"], grid * grid + 1, vision["layers"],
        text["width"], text["layers"], cfg["embed_dim"], text.get("context_length", 77),
    )


def infer_open_clip_model(state: Mapping[str, torch.Tensor]) -> str | None:
    """The standard registry name whose shapes match ``state`` (both towers), or None."""
    needed = ("visual.positional_embedding", "text_projection", "positional_embedding")
    if not is_open_clip_state(state) or any(k not in state for k in needed):
        return None
    import open_clip

    signature = _shape_signature(state)
    for name in STANDARD_MODELS:
        if _config_signature(open_clip.get_model_config(name)) == signature:
            return name
    return None


def metadata_help(path: Path) -> str:
    """How to describe an open_clip file that carries no usable metadata."""
    return (
        f"add {path.with_suffix('.json').name} next to it with "
        '{"open_clip_model": "ViT-L-14", "quick_gelu": true} (a name from open_clip.list_models(); '
        "quick_gelu is true for OpenAI's weights) or "
        '{"open_clip_config": {"embed_dim": ..., "vision_cfg": {...}, "text_cfg": {...}}}'
    )


def _registry_config(name: Any, path: Path) -> dict:
    import open_clip

    # Schemas such as hf-hub: would go online; model files here are always local.
    if not isinstance(name, str) or ":" in name:
        raise ModelFormatError(f"{path.name}: open_clip_model must be a registry name such as 'ViT-B-32', got {name!r}")
    config = open_clip.get_model_config(name)
    if config is None:
        raise ModelFormatError(
            f"{path.name}: unknown open_clip model {name!r}; expected a name from open_clip.list_models(), "
            f"e.g. {', '.join(STANDARD_MODELS)}"
        )
    return config


def _checked_config(config: Any, path: Path) -> dict:
    if not (
        isinstance(config, Mapping)
        and isinstance(config.get("embed_dim"), int)
        and isinstance(config.get("vision_cfg"), Mapping)
        and isinstance(config.get("text_cfg"), Mapping)
    ):
        raise ModelFormatError(
            f"{path.name}: open_clip_config must be an object with embed_dim (int), vision_cfg and text_cfg, got {config!r}"
        )
    return copy.deepcopy(dict(config))


def clip_config(
    state: Mapping[str, torch.Tensor], path: Path, *metadata: Mapping[str, Any]
) -> dict:
    """open_clip CLIP keyword arguments for the weights in ``path``.

    The first of ``metadata`` that has ``open_clip_config`` or ``open_clip_model``
    wins; without either, the standard models are recognised from tensor shapes
    (assumed to be OpenAI's weights, hence QuickGELU). ``quick_gelu`` in metadata
    overrides the activation either way.
    """
    for meta in metadata:
        if "open_clip_config" in meta:
            config = _checked_config(meta["open_clip_config"], path)
            break
        if "open_clip_model" in meta:
            config = _registry_config(meta["open_clip_model"], path)
            break
    else:
        name = infer_open_clip_model(state)
        if name is None:
            raise ModelFormatError(f"{path.name}: cannot tell which open_clip model this is; {metadata_help(path)}")
        log.info("%s: no open_clip metadata; recognised %s from tensor shapes, assuming OpenAI weights (QuickGELU)",
                 path.name, name)
        config = _registry_config(name, path)
        config["quick_gelu"] = True
    for meta in metadata:
        if "quick_gelu" in meta:
            config["quick_gelu"] = bool(meta["quick_gelu"])
            break
    return config


def build_clip(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: Path, image_only: bool = False) -> nn.Module:
    """An open_clip ``CLIP`` holding the weights of ``path`` (every key and shape checked).

    With ``image_only`` only the ``visual.*`` weights are needed and read; the text
    tower is a stub, which saves the memory and init time of a real one.
    """
    import open_clip

    kwargs = copy.deepcopy(dict(config))
    if kwargs.pop("custom_text", False) or "multimodal_cfg" in kwargs:
        raise ModelFormatError(f"{path.name}: only open_clip's standard CLIP layout is supported, not {sorted(config)}")
    if image_only:
        kwargs["text_cfg"] = dict(_STUB_TEXT_CFG)
    try:
        model = open_clip.model.CLIP(**kwargs)
    except (TypeError, ValueError, KeyError, AssertionError, ZeroDivisionError) as exc:
        raise ModelFormatError(f"{path.name}: the open_clip config cannot build a model ({type(exc).__name__}: {exc})") from exc
    if image_only:
        visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        if not visual:
            raise ModelFormatError(f"{path.name}: no image-tower weights (visual.*) in the file")
        load_into(model.visual, visual, f"{path.name} (image tower)")
    else:
        load_into(model, {k: v for k, v in state.items() if k not in _OPENAI_SCALARS}, path.name)
    return model.eval()


def _triple(value: Any, name: str, path: Path) -> tuple[float, float, float]:
    if not (isinstance(value, Sequence) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise ModelFormatError(f"{path.name}: metadata {name} must be 3 numbers (R, G, B), got {value!r}")
    return tuple(float(v) for v in value)


class ClipPreprocess(nn.Module):
    """CLIP's image transform on tensors, batched: shorter side to ``image_size``
    (bicubic, antialiased), centre crop, then per-channel normalisation."""

    def __init__(self, image_size: int, mean: Sequence[float] = OPENAI_MEAN, std: Sequence[float] = OPENAI_STD):
        super().__init__()
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # Resampling in float32: half-precision bicubic is not available on every device.
        resized = resize_shorter_center_crop(pixels.float(), self.image_size, mode="bicubic")
        return ((resized - self.mean.float()) / self.std.float()).to(pixels.dtype)


def make_preprocess(config: Mapping[str, Any], path: Path, *metadata: Mapping[str, Any]) -> ClipPreprocess:
    """The preprocessing for a CLIP config; ``mean``/``std`` from the first metadata that has them."""
    size = config["vision_cfg"].get("image_size", 224)
    if isinstance(size, Sequence):
        if len(size) != 2 or size[0] != size[1]:
            raise ModelFormatError(f"{path.name}: only square CLIP inputs are supported, got image_size {size}")
        size = size[0]
    mean = next((_triple(m["mean"], "mean", path) for m in metadata if "mean" in m), OPENAI_MEAN)
    std = next((_triple(m["std"], "std", path) for m in metadata if "std" in m), OPENAI_STD)
    if min(std) <= 0:
        raise ModelFormatError(f"{path.name}: metadata std must be positive, got {list(std)}")
    return ClipPreprocess(size, mean, std)


def make_tokenizer(context_length: int):
    """open_clip's BPE tokenizer (its vocabulary ships with the package: no download)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)
