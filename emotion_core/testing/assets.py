"""Write every test model into a ComfyUI-style ``models/`` tree, under the file
names the example workflows and the README's model table use."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Role -> path under models/. The example workflows reference these names.
TEST_FILES: dict[str, str] = {
    "critic_clip_b32": "emotion_critic/test_clip_b32_zero_shot.safetensors",
    "critic_clip_l14": "emotion_critic/test_clip_l14_zero_shot.safetensors",
    "critic_emogen": "emotion_critic/test_emogen_probe.safetensors",
    "critic_emoedit": "emotion_critic/test_emoedit_probe.safetensors",
    "critic_emoeditor": "emotion_critic/test_emoeditor_predictor.safetensors",
    "emotion_encoder": "emotion_encoder/test_emoeditor_encoder.safetensors",
    "adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
    "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors",
    "bank": "emotion_banks/test_emotion_bank.safetensors",
    "bank_plus": "emotion_banks/test_emotion_bank_plus.safetensors",
    "bank_redux": "emotion_banks/test_emotion_bank_flux_redux.safetensors",
    "checkpoint": "checkpoints/test_sd15_tiny.safetensors",
    "clip_vision": "clip_vision/test_clip_vision_vit_h.safetensors",
    # SDXL / Flux / SD3.5 in ComfyUI's detected layouts, shrunk where ComfyUI allows
    # (sdxl_flux_checkpoints), and tiny text encoders ComfyUI's loaders cannot read (text_encoder_assets).
    "checkpoint_sdxl": "checkpoints/test_sdxl_tiny.safetensors",
    "flux_model": "diffusion_models/test_flux_tiny.safetensors",
    "flux_vae": "vae/test_flux_vae.safetensors",
    "sd3_model": "diffusion_models/test_sd35_tiny.safetensors",
    "text_encoder_clip_l": "text_encoders/test_clip_l_tiny.safetensors",
    "text_encoder_clip_g": "text_encoders/test_clip_g_tiny.safetensors",
    "text_encoder_t5xxl": "text_encoders/test_t5xxl_tiny.safetensors",
    # Flux visual prompts: the Redux style model and SigLIP vision file (full size: ComfyUI's fixed
    # configs), and Flux IP-Adapters in XLabs and InstantX layouts for the tiny Flux model.
    "redux": "style_models/test_flux_redux.safetensors",
    "siglip_vision": "clip_vision/test_siglip_so400m_384.safetensors",
    "adapter_flux_xlabs": "ipadapter/test_flux_ip_adapter_xlabs.safetensors",
    "adapter_flux_instantx": "ipadapter/test_flux_ip_adapter_instantx.bin",
    # EmoEditor's three released files as a user downloads them (upstream's names and layouts),
    # and what the README's convert commands make of them (the emoeditor_edit workflow's
    # files); written only with ``with_emoeditor_release``.
    "emoeditor_release_ip2p": "emoeditor/model_ip2p.pt",
    "emoeditor_release_encoder": "emoeditor/model_emoenc.pt",
    "emoeditor_release_predictor": "emoeditor/emo_predictor.pt",
    "emoeditor_unet": "diffusion_models/emoeditor_ip2p_unet.safetensors",
    "emoeditor_vae": "vae/emoeditor_vae.safetensors",
    "emoeditor_encoder": "emotion_encoder/emoeditor_encoder.safetensors",
    "emoeditor_critic": "emotion_critic/emoeditor_predictor.safetensors",
}
# Written only with ``with_checkpoint`` (large: full-size SD1.5 text encoder/VAE, ViT-H, Flux's width).
CHECKPOINT_ROLES = ("checkpoint", "clip_vision", "checkpoint_sdxl", "flux_model", "flux_vae", "sd3_model",
                    "text_encoder_clip_l", "text_encoder_clip_g", "text_encoder_t5xxl", "redux", "siglip_vision",
                    "adapter_flux_xlabs", "adapter_flux_instantx")


def make_test_models(models_dir: str | Path, with_checkpoint: bool = False, seed: int = 0,
                     with_diffusers: bool = False, with_emoeditor_release: bool = False,
                     with_emoset: bool = False) -> dict[str, Path]:
    """Write the tiny models; returns role -> written path. Deterministic for a seed.
    ``with_diffusers`` adds the tiny diffusers pipeline (``diffusers_assets``; imports diffusers);
    ``with_emoeditor_release`` EmoEditor's three released files and their conversions
    (``emoeditor_assets``, ~1 GB)."""
    from .adapter_assets import write_test_adapters
    from .bank_assets import write_test_bank
    from .critic_assets import write_test_critics
    from .encoder_assets import write_test_encoder
    from .redux_assets import write_test_redux_bank

    models_dir = Path(models_dir)
    written: dict[str, Path] = {}
    written.update(write_test_critics(models_dir, TEST_FILES, seed=seed))
    written.update(write_test_encoder(models_dir, TEST_FILES, seed=seed))
    written.update(write_test_adapters(models_dir, TEST_FILES, seed=seed))
    written.update(write_test_bank(models_dir, TEST_FILES, seed=seed))  # after the critics: reads the CLIP B/32
    written.update(write_test_redux_bank(models_dir, TEST_FILES, seed=seed))
    if with_checkpoint:
        from .checkpoint import write_test_checkpoint
        from .sdxl_flux_checkpoints import write_flux_model, write_sd3_model, write_sdxl_checkpoint
        from .text_encoder_assets import write_tiny_text_encoders

        written.update(write_test_checkpoint(models_dir, TEST_FILES, seed=seed))
        from .adapter_assets import write_flux_test_adapters
        from .redux_assets import write_redux_files

        for write in (write_sdxl_checkpoint, write_flux_model, write_sd3_model, write_tiny_text_encoders,
                      write_redux_files, write_flux_test_adapters):
            written.update(write(models_dir, TEST_FILES, seed=seed))
    if with_diffusers:
        from .diffusers_assets import PIPELINE_DIR, write_tiny_sd_pipeline

        pipeline = write_tiny_sd_pipeline(models_dir / PIPELINE_DIR, seed=seed)
        written.update({f"diffusers_{role}": path for role, path in pipeline.items()})
    if with_emoeditor_release:
        from .emoeditor_assets import convert_emoeditor_release, write_emoeditor_release

        written.update(write_emoeditor_release(models_dir, TEST_FILES, seed=seed))
        written.update(convert_emoeditor_release(models_dir, TEST_FILES))
    if with_emoset:  # tiny EmoSet-118K and EmoPair trees (emoset_assets), beside the models
        from .emoset_assets import EMOPAIR_DIR, EMOSET_DIR, write_emopair_tree, write_emoset_tree

        written.update(write_emoset_tree(models_dir / EMOSET_DIR, seed=seed))
        written.update(write_emopair_tree(models_dir / EMOPAIR_DIR, seed=seed))
    for role, path in written.items():
        log.info("wrote %s: %s", role, path)
    return written
