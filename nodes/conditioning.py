"""Emotion Conditioning: an emotion direction applied to a text conditioning, either
training-free through the user's CLIP or through EmoEditor's emotion encoder."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from emotion_core.conditioning import Encoded, emotion_delta, replace_tokens, steer_conditioning
from emotion_core.emotion_encoder import load_emotion_encoder
from emotion_core.errors import InvalidInputError

from .common import CATEGORY, cached_load
from .input_checks import CheckedNode
from .model_folders import model_combo, model_path
from .types import EmotionDirectionType

NO_ENCODER = "none"


# the last encoder used (EmoEditor's is ~180 MB to read)
cached_emotion_encoder = cached_load(load_emotion_encoder, maxsize=1)


def clip_text_encoder(clip):
    """Wrap a ComfyUI CLIP as ``text -> Encoded`` for ``emotion_core.conditioning``."""

    def encode(text: str) -> Encoded:
        out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
        return Encoded(out["cond"], out.get("pooled_output"))

    return encode


class EmotionConditioning(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionConditioning",
            display_name="Emotion Conditioning",
            category=CATEGORY,
            description=(
                "Applies an emotion direction to a conditioning. Without an encoder it is training-free: emotion "
                "descriptor prompts are encoded with your CLIP and their difference from the empty prompt is added, "
                "weighted by the direction and its strength; on SDXL (CLIP-L + CLIP-G), Flux (T5-XXL + CLIP-L) and SD3.5 "
                "(CLIP-L + CLIP-G + T5-XXL) each encoder's tokens and the pooled output are steered. With an EmoEditor "
                "emotion encoder it outputs EmoEditor's "
                "77x768 emotion tokens for an InstructPix2Pix model (feed them to InstructPixToPixConditioning)."
            ),
            inputs=[
                EmotionDirectionType.Input("direction", tooltip="From an Emotion Direction node."),
                io.Conditioning.Input("conditioning", optional=True,
                                      tooltip="The text conditioning to steer (e.g. from CLIP Text Encode). "
                                      "Required without an encoder."),
                io.Clip.Input("clip", optional=True,
                              tooltip="The same CLIP that made the conditioning (SD1.5, SDXL, Flux or SD3.5); encodes "
                              "the emotion descriptors. A CLIP of another model family is an error. Required without "
                              "an encoder."),
                model_combo("emotion_encoder", "emotion_encoder", fixed=(NO_ENCODER,),
                            default=NO_ENCODER,
                            tooltip="EmoEditor emotion encoder from models/emotion_encoder/, or 'none' for the "
                            "training-free CLIP path."),
            ],
            outputs=[io.Conditioning.Output("steered_conditioning", display_name="conditioning",
                                            tooltip="The emotion-steered conditioning.")],
        )

    @classmethod
    def execute(cls, direction, conditioning=None, clip=None, emotion_encoder: str = NO_ENCODER) -> io.NodeOutput:
        if emotion_encoder and emotion_encoder != NO_ENCODER:
            encoder = cached_emotion_encoder(model_path("emotion_encoder", emotion_encoder))
            tokens = encoder.encode(direction).to(mm.intermediate_device(), torch.float32)
            return io.NodeOutput(replace_tokens(conditioning, tokens))
        if conditioning is None or clip is None:
            raise InvalidInputError(
                "without an emotion encoder, connect both conditioning and clip (the CLIP that encoded it)"
            )
        delta = emotion_delta(clip_text_encoder(clip), direction)
        return io.NodeOutput(steer_conditioning(conditioning, delta))


NODES = [EmotionConditioning]
