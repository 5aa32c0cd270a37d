"""Save Emotion Image: core Save Image plus the emotion report in each PNG, so a shared image
explains itself (``emotion_core.report``)."""

from __future__ import annotations

import json
import os

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy.cli_args import args
from comfy_api.latest import io

from emotion_core.errors import InvalidInputError
from emotion_core.images import as_rgb_batch, to_pil
from emotion_core.report import (
    PNG_METADATA_KEY,
    SEED_MAX,
    build_report,
    parse_loop_report,
    report_json,
    write_numbered_png,
)

from .common import CATEGORY, run_critic
from .input_checks import CheckedNode
from .types import EmotionCriticType, EmotionDirectionType

COMPRESS_LEVEL = 4  # core SaveImage's


def comfy_text_chunks(hidden) -> dict[str, str]:
    """ComfyUI's own chunks (``prompt``, ``workflow``, ...) as core Save Image writes them,
    none when ComfyUI runs with ``--disable-metadata``."""
    if args.disable_metadata or hidden is None:
        return {}
    chunks = {}
    if hidden.prompt is not None:
        chunks["prompt"] = json.dumps(hidden.prompt)
    for key, value in (hidden.extra_pnginfo or {}).items():
        chunks[key] = json.dumps(value)
    return chunks


def check_prefix(prefix: str) -> None:
    """Files stay inside the output folder (ComfyUI would refuse with a bare exception)."""
    if not isinstance(prefix, str):
        raise InvalidInputError(f"filename_prefix must be text, got {type(prefix).__name__}")
    if any(len(part) > 200 for part in prefix.replace("\\", "/").split("/")):
        raise InvalidInputError(f"filename_prefix {prefix[:80]!r}... is too long: at most 200 characters per folder "
                                "or file name")
    normalised = os.path.normpath(prefix)
    if os.path.isabs(normalised) or normalised.split(os.sep)[0] == os.pardir:
        raise InvalidInputError(f"filename_prefix {prefix!r} leaves the output folder; use a relative name such as "
                                "'emotion_director' or 'moods/awe'")


class EmotionSaveImage(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionSaveImage",
            display_name="Save Emotion Image",
            category=CATEGORY,
            description=(
                "Saves images to ComfyUI's output folder like Save Image (with the workflow), and writes an emotion "
                "report into each PNG: target, strength, seed, the critic's 8-way distribution of the image and the "
                "Emotion Critic Loop's outcome, so a shared image explains itself."
            ),
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                io.String.Input("filename_prefix", default="emotion_director",
                                tooltip="Prefix of the file names, as in Save Image; may name a subfolder of the output "
                                "folder (e.g. 'moods/awe'). Files are numbered and never overwritten."),
                EmotionCriticType.Input("critic", optional=True,
                                        tooltip="Scores every saved image: its 8-way distribution and top emotion go "
                                        "into the report."),
                EmotionDirectionType.Input("direction", optional=True,
                                           tooltip="The Emotion Direction the image was made with: target (or "
                                           "blend), strength and the source image's distribution."),
                io.String.Input("report", optional=True, force_input=True,
                                tooltip="The Emotion Critic Loop's report: its target, passes, why it stopped and "
                                "the best candidate's seed, denoise and SSIM."),
                io.Int.Input("seed", optional=True, force_input=True, min=0, max=SEED_MAX,
                             tooltip="The sampler's seed (connect it from the seed widget). Without it, the "
                             "loop report's best seed is recorded."),
            ],
            outputs=[
                io.String.Output("emotion_report", display_name="emotion report",
                                 tooltip="JSON array with the report of each saved image, in batch order."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def execute(cls, images, filename_prefix: str = "emotion_director", critic=None, direction=None, report=None,
                seed=None) -> io.NodeOutput:
        images = as_rgb_batch(images, "images")
        check_prefix(filename_prefix)
        loop = None if report is None else parse_loop_report(report)
        distributions = None if critic is None else run_critic(critic, images).tolist()
        reports = [build_report(direction, None if distributions is None else distributions[k], loop, seed)
                   for k in range(images.shape[0])]
        chunks = comfy_text_chunks(cls.hidden)
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), images.shape[2], images.shape[1])
        progress = comfy.utils.ProgressBar(images.shape[0])
        results = []
        for index, (image, image_report) in enumerate(zip(images, reports)):
            mm.throw_exception_if_processing_interrupted()
            stem = filename.replace("%batch_num%", str(index))
            name, counter = write_numbered_png(
                to_pil(image), folder, lambda c, stem=stem: f"{stem}_{c:05}_.png", counter,
                {**chunks, PNG_METADATA_KEY: report_json(image_report)}, COMPRESS_LEVEL)
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1
            progress.update_absolute(index + 1)
        return io.NodeOutput(json.dumps(reports, allow_nan=False), ui={"images": results})


NODES = [EmotionSaveImage]
