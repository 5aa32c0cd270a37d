"""The SDXL / Flux / SD3.5 test model writers keep the real key layouts (shape tables only, no
file written here; the real-ComfyUI tests load the files with ComfyUI's own detection)."""

from __future__ import annotations

from emotion_core.testing.checkpoint import SD15_LAYOUT, UNET_ATTN2_BLOCKS, TensorShapes, unet_shapes
from emotion_core.testing.sdxl_flux_checkpoints import SDXL_ATTN2_BLOCKS, SDXL_LAYOUT, flux_shapes, sd3_shapes


def test_sdxl_attn2_blocks_are_sdxls_real_layout():
    # SDXL base: input 4, 5 (depth 2), 7, 8 (depth 10); middle (10); output 0-2 (10), 3-5 (2)
    assert [(b, i, d) for b, i, _, d in SDXL_ATTN2_BLOCKS] == [
        ("input", 4, 2), ("input", 5, 2), ("input", 7, 10), ("input", 8, 10), ("middle", 0, 10),
        ("output", 0, 10), ("output", 1, 10), ("output", 2, 10), ("output", 3, 2), ("output", 4, 2),
        ("output", 5, 2)]
    assert sum(d for *_, d in SDXL_ATTN2_BLOCKS) == 70  # ip-adapter_sdxl's 70 cross-attention layers


def test_sdxl_keys_are_what_comfyui_detects():
    s = TensorShapes()
    unet_shapes(s, SDXL_LAYOUT)
    p = "model.diffusion_model."
    specs = s.specs
    assert specs[f"{p}input_blocks.0.0.weight"][0] == (320, 4, 3, 3)
    assert specs[f"{p}label_emb.0.0.weight"][0] == (1280, 2816)  # pooled 1280 + 6 x 256 size embeddings
    assert specs[f"{p}input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight"][0] == (320, 2048)
    assert f"{p}input_blocks.7.1.transformer_blocks.10.attn2.to_k.weight" not in specs
    assert len(specs[f"{p}input_blocks.4.1.proj_in.weight"][0]) == 2  # Linear projections (SDXL)
    assert f"{p}output_blocks.2.2.conv.weight" in specs and f"{p}output_blocks.5.2.conv.weight" in specs
    assert f"{p}output_blocks.6.1.norm.weight" not in specs  # level 0 has no transformers


def test_sd15_layout_is_unchanged():
    assert tuple(b[:3] for b in SD15_LAYOUT.attn2_blocks()) == UNET_ATTN2_BLOCKS


def test_flux_and_sd3_keys():
    flux = TensorShapes()
    flux_shapes(flux)
    assert flux.specs["double_blocks.0.img_attn.norm.key_norm.scale"][0] == (128,)  # ComfyUI's Flux marker
    assert flux.specs["txt_in.weight"][0] == (3072, 4096) and flux.specs["vector_in.in_layer.weight"][0] == (3072, 768)
    assert "guidance_in.in_layer.weight" in flux.specs  # dev (guidance-distilled), not schnell
    assert {k.split(".")[1] for k in flux.specs if k.startswith(("double_blocks", "single_blocks"))} == {"0"}
    sd3 = TensorShapes()
    sd3_shapes(sd3)
    assert sd3.specs["x_embedder.proj.weight"][0] == (128, 16, 2, 2)  # depth = 128 // 64 = 2 joint blocks
    assert "joint_blocks.1.context_block.attn.proj.weight" not in sd3.specs  # the last context block is pre-only
    assert sd3.specs["y_embedder.mlp.0.weight"][0] == (128, 2048)
