"""ComfyUI V3 nodes: one module per feature, each a thin layer over ``emotion_core``."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .model_folders import register_model_folders


class EmotionDirectorExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_model_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        register_model_folders()  # idempotent; combos need the folders before schemas are built
        from . import (
            agent_rewriter,
            conditioning,
            critic_loop,
            critics,
            direction,
            negative_visual_guidance,
            preference,
            prompt_bank,
            save_image,
            visual_prompt,
        )

        return [*critics.NODES, *direction.NODES, *conditioning.NODES, *visual_prompt.NODES, *prompt_bank.NODES,
                *agent_rewriter.NODES, *negative_visual_guidance.NODES, *preference.NODES, *critic_loop.NODES,
                *save_image.NODES]
