"""Tiny random-weight text encoders (CLIP-L, CLIP-G, T5-XXL) in the key layouts of the public
``text_encoders/`` files (Hugging Face names), for tests of SDXL, Flux and SD3.5 conditioning.

ComfyUI builds every text encoder from a fixed config (CLIP-L 12 x 768, CLIP-G 32 x 1280,
T5-XXL 24 x 4096: 5.6B parameters together) and routes a file to an encoder by its layer
count, so its loader nodes cannot read shrunken ones. Tests therefore build ComfyUI's own
encoder classes (``SDXLClipModel``, ``FluxClipModel``, ``SD3ClipModel``) with the config
overrides ComfyUI's ``<name>_model_config`` model option allows (``TINY_CONFIGS``), load
these files into them, and encode through ComfyUI's real ``CLIP`` object, so the
conditioning has the real families' structure: token widths 2048 (SDXL), 4096 (Flux,
SD3.5) and pooled widths 1280 / 768 / 2048. Only depth, MLP width and head count shrink;
the widths the diffusion models read and the vocabularies (the real tokenizers' ids)
stay. T5's padding is 64 tokens instead of 256 (``T5_MIN_LENGTH``) to keep Flux steps cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .checkpoint import TensorShapes, clip_encoder_layer, write_shapes

CLIP_VOCAB = 49408
T5_VOCAB = 32128
T5_MIN_LENGTH = 64
CLIP_LAYERS = 3  # SDXL and SD3 read the penultimate layer (layer_idx -2 needs more than 2)

# ComfyUI model_options overrides, keyed as comfy.sd1_clip.SDClipModel reads them.
TINY_CONFIGS: dict[str, dict] = {
    "clip_l_model_config": {"num_hidden_layers": CLIP_LAYERS, "intermediate_size": 64},
    "clip_g_model_config": {"num_hidden_layers": CLIP_LAYERS, "intermediate_size": 64},
    "t5xxl_model_config": {"num_layers": 1, "d_ff": 64, "num_heads": 2, "d_kv": 32},
}
T5_INNER = TINY_CONFIGS["t5xxl_model_config"]["num_heads"] * TINY_CONFIGS["t5xxl_model_config"]["d_kv"]


def clip_text_shapes(s: TensorShapes, width: int) -> None:
    """A CLIP text tower (HF names, with ``text_projection``) of ``CLIP_LAYERS`` layers."""
    mlp = TINY_CONFIGS["clip_l_model_config"]["intermediate_size"]
    p = "text_model."
    s.param(f"{p}embeddings.token_embedding.weight", (CLIP_VOCAB, width), 0.02)
    s.param(f"{p}embeddings.position_embedding.weight", (77, width), 0.02)
    for i in range(CLIP_LAYERS):
        clip_encoder_layer(s, f"{p}encoder.layers.{i}.", width, mlp)
    s.norm(f"{p}final_layer_norm", width)
    s.linear("text_projection", width, width, bias=False)


def t5_shapes(s: TensorShapes) -> None:
    """A one-block T5 v1.1 encoder (gated GELU) at T5-XXL's 4096 width, HF names."""
    d, cfg = 4096, TINY_CONFIGS["t5xxl_model_config"]
    s.param("shared.weight", (T5_VOCAB, d), 1.0)
    for i in range(cfg["num_layers"]):
        b = f"encoder.block.{i}.layer."
        for name in ("q", "k", "v"):
            s.linear(f"{b}0.SelfAttention.{name}", T5_INNER, d, bias=False)
        s.linear(f"{b}0.SelfAttention.o", d, T5_INNER, bias=False)
        if i == 0:
            s.param(f"{b}0.SelfAttention.relative_attention_bias.weight", (32, cfg["num_heads"]), 0.02)
        s.param(f"{b}0.layer_norm.weight", (d,), "ones")
        s.linear(f"{b}1.DenseReluDense.wi_0", cfg["d_ff"], d, bias=False)
        s.linear(f"{b}1.DenseReluDense.wi_1", cfg["d_ff"], d, bias=False)
        s.linear(f"{b}1.DenseReluDense.wo", d, cfg["d_ff"], bias=False)
        s.param(f"{b}1.layer_norm.weight", (d,), "ones")
    s.param("encoder.final_layer_norm.weight", (d,), "ones")


def write_tiny_text_encoders(models_dir: str | Path, names: Mapping[str, str], seed: int = 0) -> dict[str, Path]:
    """CLIP-L (768), CLIP-G (1280) and T5-XXL (4096) tiny encoders at ``names["text_encoder_*"]``."""
    models_dir = Path(models_dir)
    written = {}
    for role, width in (("text_encoder_clip_l", 768), ("text_encoder_clip_g", 1280)):
        shapes = TensorShapes()
        clip_text_shapes(shapes, width)
        written[role] = write_shapes(role, shapes, models_dir / names[role], seed, "clip-text-hf")
    t5 = TensorShapes()
    t5_shapes(t5)
    written["text_encoder_t5xxl"] = write_shapes("text_encoder_t5xxl", t5, models_dir / names["text_encoder_t5xxl"],
                                                 seed, "t5-encoder-hf")
    return written
