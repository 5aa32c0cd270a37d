"""Random-weight files for the Flux Redux path, in the layouts ComfyUI detects.

- Redux style model (``style_models/``): ``redux_up.{weight,bias} [12288, 1152]``,
  ``redux_down.{weight,bias} [4096, 12288]``. ``comfy.sd.load_style_model`` picks it by
  ``redux_down.weight`` and loads it strictly into a fixed-size ``ReduxImageEncoder``, so
  the file keeps the full shapes (64.5M parameters, 129 MB in fp16).
- SigLIP so400m vision (``clip_vision/``), transformers key names. ComfyUI's
  ``load_clipvision_from_sd`` chooses ``clip_vision_siglip_384.json`` from layer 22's
  presence, width 1152 and 729 positions, and builds the fixed config (27 layers,
  MLP 4304); missing weights would stay uninitialised, so the file is full size
  (428M parameters, 0.86 GB in fp16). Written only with ``--with-checkpoint``.
- A ``flux-redux`` prompt bank: per emotion SigLIP-space centres ``[K, T, 1152]``
  (T = 16 here; a bank built from images has SigLIP 384's 729 tokens).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from ..bank.feature_encoders import load_text_encoder
from ..bank.store import FLUX_REDUX, PROBE_TEXTS, PromptBank, save_bank
from ..taxonomy import EMOTIONS
from ..visual_prompt.redux import SIGLIP_DIM
from ..weights import save_safetensors

REDUX_T5_DIM = 4096
SIGLIP_LAYERS, SIGLIP_MLP, SIGLIP_POSITIONS, SIGLIP_PATCH = 27, 4304, 729, 14
TEST_BANK_TOKENS, TEST_BANK_CLUSTERS = 16, 3
_DTYPE = torch.float16


def _generator(role: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{role}:{seed}".encode()))


def _linear(tensors: dict, name: str, out_features: int, in_features: int, generator) -> None:
    tensors[f"{name}.weight"] = (torch.randn(out_features, in_features, generator=generator)
                                 / math.sqrt(in_features)).to(_DTYPE)
    tensors[f"{name}.bias"] = torch.zeros(out_features, dtype=_DTYPE)


def redux_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = _generator("redux", seed)
    tensors: dict[str, torch.Tensor] = {}
    _linear(tensors, "redux_up", 3 * REDUX_T5_DIM, SIGLIP_DIM, g)
    _linear(tensors, "redux_down", REDUX_T5_DIM, 3 * REDUX_T5_DIM, g)
    return tensors


def siglip_vision_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = _generator("siglip", seed)
    d, p = SIGLIP_DIM, "vision_model."
    tensors: dict[str, torch.Tensor] = {
        f"{p}embeddings.patch_embedding.weight": (torch.randn(d, 3, SIGLIP_PATCH, SIGLIP_PATCH, generator=g)
                                                  / math.sqrt(3 * SIGLIP_PATCH ** 2)).to(_DTYPE),
        f"{p}embeddings.patch_embedding.bias": torch.zeros(d, dtype=_DTYPE),
        f"{p}embeddings.position_embedding.weight": (torch.randn(SIGLIP_POSITIONS, d, generator=g) * 0.02).to(_DTYPE),
    }
    for i in range(SIGLIP_LAYERS):
        q = f"{p}encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            tensors[f"{q}{norm}.weight"], tensors[f"{q}{norm}.bias"] = torch.ones(d, dtype=_DTYPE), \
                torch.zeros(d, dtype=_DTYPE)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(tensors, f"{q}self_attn.{proj}", d, d, g)
        _linear(tensors, f"{q}mlp.fc1", SIGLIP_MLP, d, g)
        _linear(tensors, f"{q}mlp.fc2", d, SIGLIP_MLP, g)
    tensors[f"{p}post_layernorm.weight"], tensors[f"{p}post_layernorm.bias"] = torch.ones(d, dtype=_DTYPE), \
        torch.zeros(d, dtype=_DTYPE)
    return tensors


def write_redux_files(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """The Redux style model and the SigLIP vision file at ``names["redux"]`` / ``names["siglip_vision"]``."""
    models_dir = Path(models_dir)
    meta = {"seed": seed, "random_weights": True}
    return {
        "redux": save_safetensors(redux_state_dict(seed), models_dir / names["redux"],
                                  {**meta, "layout": "flux redux"}),
        "siglip_vision": save_safetensors(siglip_vision_state_dict(seed), models_dir / names["siglip_vision"],
                                          {**meta, "layout": "siglip so400m patch14 384 (transformers keys)"}),
    }


def write_test_redux_bank(models_dir: str | Path, names: Mapping[str, str], seed: int = 0,
                          text_encoder_role: str = "critic_clip_b32") -> dict[str, Path]:
    """A ``flux-redux`` bank of random SigLIP-space centres at ``names["bank_redux"]`` (its text side is the
    test CLIP B/32 critic file, written first)."""
    models_dir = Path(models_dir)
    clip_path = models_dir / names[text_encoder_role]
    encode = load_text_encoder(clip_path)
    g = _generator("redux_bank", seed)
    text, pooled, sequences, counts = {}, {}, {}, {}
    for emotion in EMOTIONS:
        text[emotion] = F.normalize(torch.randn(TEST_BANK_CLUSTERS, encode.dim, generator=g), dim=-1)
        sequences[emotion] = torch.randn(TEST_BANK_CLUSTERS, TEST_BANK_TOKENS, SIGLIP_DIM, generator=g)
        pooled[emotion] = sequences[emotion].mean(dim=1)
        counts[emotion] = torch.randint(1, 20, (TEST_BANK_CLUSTERS,), generator=g)
    metadata = {
        "built_for": FLUX_REDUX.name,
        "text_encoder": {"kind": "open_clip", "file": clip_path.name, "dim": encode.dim},
        "image_encoder": {"kind": "siglip", "name": "test_siglip_so400m", "dim": SIGLIP_DIM,
                          "feature": FLUX_REDUX.feature},
        "clusters": TEST_BANK_CLUSTERS, "classes": list(EMOTIONS), "source": "random", "seed": seed,
        "random_weights": True,
    }
    bank = PromptBank(text, pooled, counts, encode(list(PROBE_TEXTS)), metadata,
                      extra_centres={FLUX_REDUX.group: sequences})
    return {"bank_redux": save_bank(bank, models_dir / names["bank_redux"])}
