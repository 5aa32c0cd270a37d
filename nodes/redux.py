"""Emotion visual prompts for Flux through ComfyUI's core Redux path: a flux-redux prompt
bank gives the CLIP_VISION_OUTPUT that ``Apply Style Model`` reads, for the target emotion
and for the negative visual branch (another emotion, same text)."""

from __future__ import annotations

from comfy_api.latest import io

from emotion_core.taxonomy import EMOTIONS
from emotion_core.visual_prompt.redux import (
    REDUX_COMBINE_MODES,
    SiglipOutput,
    check_redux_bank,
    check_style_model,
    redux_sequence,
)

from .common import CATEGORY, emotion_combo
from .input_checks import CheckedNode
from .model_folders import model_combo, model_path
from .prompt_bank import TOP_K_MAX, cached_bank, caption_query


class EmotionReduxPrompt(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionReduxPrompt",
            display_name="Emotion Redux Prompt (Flux)",
            category=CATEGORY,
            description=(
                "MC-Diffusion visual prompts on Flux through ComfyUI's own Redux path: finds the clusters of an "
                "emotion's images whose captions are closest to your text in a flux-redux prompt bank and gives "
                "their SigLIP features as a CLIP vision output for Apply Style Model (with the Redux style model). "
                "The second output is another emotion's, for the negative visual branch: the same text through a "
                "second Apply Style Model."
            ),
            inputs=[
                model_combo("bank_name", "emotion_banks",
                            tooltip="A prompt bank built for Flux Redux (`emotion-director bank build ... --kind "
                            "flux-redux`), in models/emotion_banks/."),
                emotion_combo("emotion", default="awe", tooltip="Whose images the visual prompt comes from."),
                io.String.Input("text", multiline=True, default="",
                                tooltip="What the image shows; clusters with the closest captions are retrieved. "
                                "Empty: the emotion's largest clusters."),
                io.Int.Input("top_k", default=3, min=1, max=TOP_K_MAX,
                             tooltip="How many clusters to retrieve (capped at the clusters the emotion has)."),
                io.Combo.Input("combine", options=list(REDUX_COMBINE_MODES), default="weighted",
                               tooltip="'weighted': one image's worth of SigLIP tokens from the similarity-weighted "
                               "mean of the clusters; 'concat': every cluster's tokens (more Redux tokens)."),
                emotion_combo("negative_emotion", default="sadness",
                              tooltip="The emotion of the negative visual prompt (second output): MC-Diffusion's "
                              "same text with another emotion's visual prompt."),
                io.StyleModel.Input("style_model", optional=True,
                                    tooltip="Optional: the Redux style model you will apply, to check now that it "
                                    "reads the bank's SigLIP width."),
            ],
            outputs=[
                io.ClipVisionOutput.Output("clip_vision_output", display_name="clip_vision_output",
                                           tooltip="The emotion's SigLIP features: connect to Apply Style Model."),
                io.ClipVisionOutput.Output("negative_clip_vision_output", display_name="negative_clip_vision_output",
                                           tooltip="The negative emotion's SigLIP features: a second Apply Style "
                                           "Model on the same text gives the negative visual conditioning."),
            ],
        )

    @classmethod
    def execute(cls, bank_name: str, emotion: str, text: str, top_k: int, combine: str = "weighted",
                negative_emotion: str = EMOTIONS[-1], style_model=None) -> io.NodeOutput:
        bank = cached_bank(model_path("emotion_banks", bank_name))
        check_redux_bank(bank)  # before the (slow) text tower is loaded
        if style_model is not None:
            check_style_model(style_model.model.redux_up.in_features, bank.kind_centres(bank.emotions[0]).shape[-1])
        query = caption_query(bank, text)
        positive = redux_sequence(bank, emotion, query, top_k, combine)
        negative = redux_sequence(bank, negative_emotion, query, top_k, combine)
        return io.NodeOutput(SiglipOutput(positive), SiglipOutput(negative))


NODES = [EmotionReduxPrompt]
