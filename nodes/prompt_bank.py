"""MC-Diffusion prompt bank: emotion + text -> visual prompt tokens, no images needed.

The negative emotion's tokens are the prompt's ``negative_visual`` role, read by the
Negative Visual DPO Sampler/Guider's negative visual branch; the unconditional branch
(``negative``) always gets the adapter's "no image" tokens, so the CFG negative stays
plain text."""

from __future__ import annotations

from comfy_api.latest import io

from emotion_core.bank import load_bank
from emotion_core.bank.feature_encoders import load_text_encoder
from emotion_core.bank.retrieval import (
    BANK_COMBINE_MODES,
    bank_visual_prompt,
    check_bank_fits,
)
from emotion_core.errors import ModelFormatError
from emotion_core.taxonomy import EMOTIONS

from .common import CATEGORY, cached_load, emotion_combo
from .input_checks import CheckedNode
from .model_folders import model_combo, model_files, model_path
from .types import VisualPromptAdapterType, VisualPromptType

NO_NEGATIVE = "none"
TOP_K_MAX = 64


cached_bank = cached_load(load_bank, maxsize=2)
# the bank's text tower (a ViT-H text tower takes seconds to build)
cached_text_encoder = cached_load(load_text_encoder, maxsize=1)


def caption_query(bank, text: str):
    """The text's feature in the bank's caption space (its own open_clip text tower), or None for an
    empty text (the emotion's largest clusters are used)."""
    if not text.strip():
        return None
    encode = cached_text_encoder(text_encoder_path(bank.text_encoder_file))
    bank.check_text_encoder(encode)
    return encode([text.strip()])[0]


def text_encoder_path(name: str) -> str:
    """The bank's open_clip file in models/emotion_critic/: by its stored name, else the one
    file of that base name in a sub-folder."""
    matches = [f for f in model_files("emotion_critic") if f.rsplit("/", 1)[-1] == name]
    try:
        return model_path("emotion_critic", matches[0] if len(matches) == 1 else name)
    except ModelFormatError as exc:
        raise ModelFormatError(f"this bank's text features come from the open_clip file {name!r}; put that file in "
                               f"models/emotion_critic/ ({exc})") from exc


class EmotionVisualPromptBank(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionVisualPromptBank",
            display_name="Emotion Visual Prompt Bank",
            category=CATEGORY,
            description=(
                "MC-Diffusion prompt bank: finds the clusters of an emotion's images whose captions are closest to "
                "your text and turns their mean image features into visual prompt tokens for the Visual Prompt "
                "Injector or the Negative Visual DPO Sampler. A bank serves the adapter kind it was built for "
                "(base: pooled image features; plus: CLIP vision hidden states). The bank's text features come "
                "from the open_clip file it was built with, read from models/emotion_critic/."
            ),
            inputs=[
                model_combo("bank_name", "emotion_banks",
                            tooltip="Prompt bank in models/emotion_banks/, built with `emotion-director bank "
                            "build`. Its open_clip file must be in models/emotion_critic/ under the same name."),
                VisualPromptAdapterType.Input("adapter", tooltip="The adapter kind the bank was built for (base or "
                                              "plus, `bank build --kind`) with the CLIP vision model of the bank's "
                                              "image features (e.g. ViT-H/14 for ip-adapter_sd15)."),
                emotion_combo("emotion", default=EMOTIONS[0],
                              tooltip="Whose images the visual prompt is retrieved from."),
                io.String.Input("text", multiline=True, default="",
                                tooltip="What the image shows; clusters with the closest captions are retrieved. "
                                "Empty: the emotion's largest clusters."),
                io.Int.Input("top_k", default=3, min=1, max=TOP_K_MAX,
                             tooltip="How many clusters to retrieve (capped at the clusters the emotion has)."),
                io.Combo.Input("combine", options=list(BANK_COMBINE_MODES), default="weighted",
                               tooltip="'weighted': one visual prompt from the similarity-weighted mean of the "
                               "retrieved clusters; 'concat': attention draws on each cluster's tokens."),
                emotion_combo("negative_emotion", fixed=(NO_NEGATIVE,), default=NO_NEGATIVE,
                              tooltip="Optional emotion for MC-Diffusion's negative visual prompt: its tokens for "
                              "the same text go to the Negative Visual DPO Sampler's negative visual branch (never "
                              "to the unconditional branch, which keeps the adapter's neutral tokens). 'none': no "
                              "negative visual prompt."),
            ],
            outputs=[VisualPromptType.Output("visual_prompt", display_name="visual_prompt",
                                             tooltip="Image tokens for the Visual Prompt Injector's visual_prompt input "
                                             "(use the same adapter there).")],
        )

    @classmethod
    def execute(cls, bank_name: str, adapter, emotion: str, text: str, top_k: int, combine: str = "weighted",
                negative_emotion: str = NO_NEGATIVE) -> io.NodeOutput:
        bank = cached_bank(model_path("emotion_banks", bank_name))
        check_bank_fits(bank, adapter)  # before the (slow) text tower is loaded
        query = caption_query(bank, text)
        negative = None if negative_emotion == NO_NEGATIVE else negative_emotion
        return io.NodeOutput(bank_visual_prompt(adapter, bank, emotion, query, top_k, combine, negative))


NODES = [EmotionVisualPromptBank]
