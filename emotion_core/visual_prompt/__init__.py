"""MC-Diffusion visual prompts: IP-Adapter-layout adapters whose image tokens guide the
UNet next to the text through decoupled cross-attention."""

from .adapter import VisualPromptAdapter, load_adapter
from .attention import ImagePromptAttention, make_patches, sdpa_attention
from .injection import (DEFAULT_CONDITION_ROLES, GUIDER_ROLES_OPTION, ProjectedPrompt, VisualPromptInjection,
                        check_sites)
from .layout import AdapterLayout, detect_layout
from .prompt import NEGATIVE, NEGATIVE_VISUAL, POSITIVE, VisualPrompt, build_visual_prompt, neutral_image
from .schedule import PRESETS, layer_weights
from .sites import AttnSite, comfy_unet_attn2_sites

__all__ = [
    "AdapterLayout", "AttnSite", "DEFAULT_CONDITION_ROLES", "GUIDER_ROLES_OPTION", "ImagePromptAttention", "NEGATIVE",
    "NEGATIVE_VISUAL", "POSITIVE",
    "PRESETS", "ProjectedPrompt", "VisualPrompt", "VisualPromptAdapter", "VisualPromptInjection",
    "build_visual_prompt", "check_sites", "comfy_unet_attn2_sites", "detect_layout", "layer_weights",
    "load_adapter", "make_patches", "neutral_image", "sdpa_attention",
]
