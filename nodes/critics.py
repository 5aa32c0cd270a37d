"""Load Emotion Critic: a critic from ``models/emotion_critic/`` for the nodes that judge images."""

from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from emotion_core.critics import load_critic

from .common import CATEGORY
from .input_checks import CheckedNode
from .model_folders import model_combo, model_path
from .types import EmotionCriticType


class EmotionCriticLoader(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionCriticLoader",
            display_name="Load Emotion Critic",
            category=CATEGORY,
            description=(
                "Loads an emotion critic: a model that reads an image and says how much it evokes each of the "
                "8 Mikels emotions. CLIP zero-shot, CLIP probe heads (EmoGen, EmoEdit) and EmoEditor's "
                "ResNet-18 predictor are supported."
            ),
            inputs=[
                model_combo("critic_name", "emotion_critic",
                            tooltip="Critic file in models/emotion_critic/ (.safetensors, or .pt/.pth loaded "
                            "weights-only). A .json sidecar or the safetensors metadata says its kind, backbone and "
                            "class order."),
            ],
            outputs=[EmotionCriticType.Output("critic", display_name="critic", tooltip="The loaded emotion critic.")],
        )

    @classmethod
    def execute(cls, critic_name: str) -> io.NodeOutput:
        critic = load_critic(model_path("emotion_critic", critic_name), device=mm.unet_offload_device())
        return io.NodeOutput(critic)


NODES = [EmotionCriticLoader]
