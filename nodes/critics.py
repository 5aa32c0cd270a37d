"""Load Emotion Critic: a critic from ``models/emotion_critic/`` for the nodes that judge images."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from emotion_core.critics import EmotionCritic, load_critic
from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch
from .input_checks import CheckedNode
from .model_folders import model_files, model_path
from .types import EmotionCriticType

CATEGORY = "Emotion Director"


def run_critic(critic: EmotionCritic, images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Probabilities ``[B,8]`` (canonical order, on CPU), computed on ComfyUI's device;
    the critic goes back to the CPU afterwards so it holds no VRAM between runs.
    ``name`` is the input the images came from, for error messages."""
    if not callable(getattr(critic, "predict", None)):
        raise InvalidInputError(f"critic: expected an EMOTION_CRITIC (Load Emotion Critic), got {type(critic).__name__}")
    images = as_rgb_batch(images, name)
    device = mm.get_torch_device()
    critic.to(device)
    try:
        return critic.predict(images)
    finally:
        critic.to(mm.unet_offload_device())


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
                io.Combo.Input(
                    "critic_name",
                    options=model_files("emotion_critic"),
                    tooltip="Critic file in models/emotion_critic/ (.safetensors, or .pt/.pth loaded weights-only). "
                    "A .json sidecar or the safetensors metadata says its kind, backbone and class order.",
                ),
            ],
            outputs=[EmotionCriticType.Output("critic", display_name="critic", tooltip="The loaded emotion critic.")],
        )

    @classmethod
    def execute(cls, critic_name: str) -> io.NodeOutput:
        critic = load_critic(model_path("emotion_critic", critic_name), device=mm.unet_offload_device())
        return io.NodeOutput(critic)


NODES = [EmotionCriticLoader]
