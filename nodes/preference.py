"""Human feedback for negative-visual DPO: save preference pairs (chosen vs rejected image,
prompt, emotions, visual prompts) to a dataset under ComfyUI's output folder, in the format
``emotion-director train-dpo`` reads."""

from __future__ import annotations

import json
import os

from comfy_api.latest import io

from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch, to_pil
from emotion_core.preference import PreferenceStore, safe_dataset_dir
from emotion_core.taxonomy import EMOTIONS

from .common import CATEGORY, emotion_combo
from .input_checks import CheckedNode
from .types import VisualPromptType

DATASETS_FOLDER = "emotion_preferences"
NO_EMOTION = "none"


def dataset_root() -> str:
    import folder_paths

    return os.path.join(folder_paths.get_output_directory(), DATASETS_FOLDER)


class EmotionPreferenceCollector(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionPreferenceCollector",
            display_name="Save Emotion Preference Pair",
            category=CATEGORY,
            description=(
                "Saves preference pairs for negative-visual DPO training: the image you (or a critic loop) prefer, "
                "the one you reject, the prompt, the target and negative emotions and the visual prompts, as PNG + "
                "one JSONL line per pair in output/emotion_preferences/<dataset>/. Existing pairs are never "
                "overwritten; train with `emotion-director train-dpo --data <that folder>`."
            ),
            inputs=[
                io.Image.Input("chosen", tooltip="Preferred image(s); image i pairs with rejected image i."),
                io.Image.Input("rejected", tooltip="Rejected image(s), same batch size as chosen (or 1, paired with "
                               "every chosen image)."),
                io.String.Input("prompt", multiline=True, default="", tooltip="The text prompt both images were "
                                "made from (the DPO trainer conditions both branches on it)."),
                emotion_combo("target_emotion", default=EMOTIONS[0],
                              tooltip="The emotion the chosen image should evoke."),
                emotion_combo("negative_emotion", fixed=(NO_EMOTION,), default=NO_EMOTION,
                              tooltip="The emotion of the negative visual prompt (what the rejected image drifted "
                              "towards), or none."),
                io.String.Input("dataset", default="default",
                                tooltip="Dataset folder name under output/emotion_preferences/ (letters, digits, "
                                "'_', '-', '.', sub-folders with '/'; it cannot leave that folder)."),
                VisualPromptType.Input("positive_visual_prompt", optional=True,
                                       tooltip="Visual prompt of the target emotion used for the images; its tokens "
                                       "are saved with the pair."),
                VisualPromptType.Input("negative_visual_prompt", optional=True,
                                       tooltip="Visual prompt of the negative emotion; its tokens are saved with the "
                                       "pair (the DPO trainer conditions the rejected branch on it)."),
            ],
            outputs=[io.String.Output("saved", display_name="saved",
                                      tooltip="JSON list of the saved pair ids and the dataset folder.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, chosen, rejected, prompt: str, target_emotion: str, negative_emotion: str, dataset: str,
                positive_visual_prompt=None, negative_visual_prompt=None) -> io.NodeOutput:
        import comfy.model_management

        chosen, rejected = as_rgb_batch(chosen, "chosen"), as_rgb_batch(rejected, "rejected")
        if rejected.shape[0] not in (1, chosen.shape[0]):
            raise InvalidInputError(f"chosen has {chosen.shape[0]} images but rejected has {rejected.shape[0]}; use "
                                    "the same batch size (or one rejected image for all)")
        root = safe_dataset_dir(dataset_root(), dataset)
        store = PreferenceStore(root)
        negative = None if negative_emotion == NO_EMOTION else negative_emotion
        ids = []
        for index in range(chosen.shape[0]):
            comfy.model_management.throw_exception_if_processing_interrupted()
            pair = store.add(to_pil(chosen[index]), to_pil(rejected[min(index, rejected.shape[0] - 1)]), prompt,
                             target_emotion, negative, positive_visual_prompt, negative_visual_prompt,
                             extra={"source": "comfyui"})
            ids.append(pair.id)
        report = json.dumps({"dataset": str(root), "pairs": ids})
        shown = f"saved {len(ids)} pair(s) {', '.join(ids)} to {root}"
        return io.NodeOutput(report, ui={"text": [shown]})


NODES = [EmotionPreferenceCollector]
