"""SD1.5 settings no weight file carries: the pipeline's component table and the
scheduler config (as in runwayml/stable-diffusion-v1-5's folder). Shared by the
offline single-file loader and the tiny test pipeline."""

from __future__ import annotations

SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "prediction_type": "epsilon", "timestep_spacing": "leading", "clip_sample": False,
}
# Not in the weights either: heads and norm groups of every SD1.5 fine-tune.
UNET_HEADS = 8
TEXT_HEAD_DIM = 64
NORM_GROUPS = 32
VAE_SCALING_FACTOR = 0.18215


def model_index(diffusers_version: str) -> dict:
    """``model_index.json`` of a StableDiffusionPipeline without safety checker or image encoder."""
    return {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers_version,
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", SCHEDULER_CONFIG["_class_name"]], "safety_checker": [None, None],
        "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
    }
