"""ComfyUI V3 nodes: one module per feature, each a thin layer over ``emotion_core``."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .example_inputs import install_example_inputs
from .model_folders import register_model_folders


class EmotionDirectorExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_model_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI (0.3.64) calls only this, not on_load: both steps are idempotent
        register_model_folders()  # combos need the folders before schemas are built
        install_example_inputs()  # the example workflows' Load Image pictures
        from . import (
            agent_rewriter,
            conditioning,
            critic_loop,
            critics,
            direction,
            negative_visual_guidance,
            preference,
            prompt_bank,
            redux,
            save_image,
            visual_prompt,
        )

        return [*critics.NODES, *direction.NODES, *conditioning.NODES, *visual_prompt.NODES, *prompt_bank.NODES,
                *redux.NODES, *agent_rewriter.NODES, *negative_visual_guidance.NODES, *preference.NODES,
                *critic_loop.NODES, *save_image.NODES]
