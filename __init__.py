"""Emotion Director for ComfyUI.

ComfyUI loads this file as the custom-node package. Registration goes through
the V3 ``comfy_entrypoint`` only (no ``NODE_CLASS_MAPPINGS``), and nothing heavy
is imported until ComfyUI asks for the node list.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import EmotionDirectorExtension

    return EmotionDirectorExtension()
