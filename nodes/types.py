"""The custom socket types this pack adds to ComfyUI."""

from comfy_api.latest import io

EmotionCriticType = io.Custom("EMOTION_CRITIC")
EmotionDirectionType = io.Custom("EMOTION_DIRECTION")
VisualPromptAdapterType = io.Custom("VISUAL_PROMPT_ADAPTER")
VisualPromptType = io.Custom("VISUAL_PROMPT")
