"""Test-only ComfyUI custom node: ComfyUI's own SDXL / Flux / SD3.5 text encoders, built small.

ComfyUI's loader nodes build CLIP-L, CLIP-G and T5-XXL from fixed configs, so they cannot
read the tiny encoders of ``emotion_core.testing.text_encoder_assets``. ``load_tiny_clip``
builds ComfyUI's real encoder classes (``SDXLClipModel``, ``FluxClipModel``,
``SD3ClipModel``, ``SD1ClipModel``) with the config overrides ComfyUI's
``<name>_model_config`` model option allows, loads the tiny files into each sub-encoder and
wraps them in ComfyUI's ``comfy.sd.CLIP``: tokenizers, ``encode_from_tokens``, pooled
outputs and conditioning types are ComfyUI's. The real-ComfyUI tests link this folder into
the server's ``custom_nodes`` and use ``EmotionDirectorTestTinyCLIPLoader`` where a user's
workflow has a CLIP loader (DualCLIPLoader, CheckpointLoaderSimple's CLIP output).
Not part of the pack.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # loaded by ComfyUI from custom_nodes/: emotion_core must import
    sys.path.append(str(REPO_ROOT))

FAMILIES = ("sd15", "sdxl", "flux", "sd3")
# family -> sub-encoders (attribute on the ComfyUI model, TEST_FILES role)
_ENCODERS = {
    "sd15": (("clip_l", "text_encoder_clip_l"),),
    "sdxl": (("clip_l", "text_encoder_clip_l"), ("clip_g", "text_encoder_clip_g")),
    "flux": (("clip_l", "text_encoder_clip_l"), ("t5xxl", "text_encoder_t5xxl")),
    "sd3": (("clip_l", "text_encoder_clip_l"), ("clip_g", "text_encoder_clip_g"), ("t5xxl", "text_encoder_t5xxl")),
}


def _clip_target(family: str):
    from comfy import sd1_clip, sdxl_clip
    from comfy.supported_models_base import ClipTarget
    from comfy.text_encoders import flux, sd3_clip

    return {
        "sd15": lambda: ClipTarget(sd1_clip.SD1Tokenizer, sd1_clip.SD1ClipModel),
        "sdxl": lambda: ClipTarget(sdxl_clip.SDXLTokenizer, sdxl_clip.SDXLClipModel),
        "flux": lambda: ClipTarget(flux.FluxTokenizer, flux.flux_clip()),
        "sd3": lambda: ClipTarget(sd3_clip.SD3Tokenizer, sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=True)),
    }[family]()


def load_tiny_clip(family: str, models_dir: str | Path):
    """ComfyUI's CLIP for ``family`` with the tiny test encoders from ``models_dir``."""
    import comfy.sd
    import comfy.utils

    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.text_encoder_assets import T5_MIN_LENGTH, TINY_CONFIGS

    states = {name: comfy.utils.load_torch_file(str(Path(models_dir) / TEST_FILES[role]), safe_load=True)
              for name, role in _ENCODERS[family]}
    clip = comfy.sd.CLIP(_clip_target(family), tokenizer_data={"t5xxl_min_length": T5_MIN_LENGTH},
                         parameters=sum(comfy.utils.calculate_parameters(s) for s in states.values()),
                         model_options=dict(TINY_CONFIGS))
    for name, state in states.items():
        missing, unexpected = getattr(clip.cond_stage_model, name).load_sd(state)
        if missing or unexpected:
            raise RuntimeError(f"tiny {name}: missing {missing}, unexpected {unexpected}")
    return clip


class EmotionDirectorTestTinyCLIPLoader:
    """CLIP loader for tests: the tiny encoders for one model family."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(FAMILIES),)}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, family):
        import folder_paths

        return (load_tiny_clip(family, Path(folder_paths.models_dir)),)


NODE_CLASS_MAPPINGS = {"EmotionDirectorTestTinyCLIPLoader": EmotionDirectorTestTinyCLIPLoader}
