"""Emotion Direction: where to move an image emotionally (EmoEditor's target − source)."""

from __future__ import annotations

import json

from comfy_api.latest import io

from emotion_core.direction import STRENGTH_RANGE, make_direction, source_distribution
from emotion_core.errors import InvalidInputError

from .common import CATEGORY, emotion_combo, run_critic
from .input_checks import CheckedNode
from .types import EmotionCriticType, EmotionDirectionType


def format_report(report: dict) -> str:
    """A short human-readable summary for the node's text output."""
    lines = [f"target: {report['target']}  strength: {report['strength']:.2f}"]
    if report["source"] is not None:
        ranked = sorted(report["source"].items(), key=lambda kv: -kv[1])
        lines.append("source: " + ", ".join(f"{e} {p:.2f}" for e, p in ranked))
    lines.append("direction: " + ", ".join(f"{e} {v:+.2f}" for e, v in report["direction"].items()))
    return "\n".join(lines)


class EmotionDirectionNode(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmotionDirection",
            display_name="Emotion Direction",
            category=CATEGORY,
            description=(
                "Turns a target emotion (or a blend) into an emotion direction. With a source image and a critic, "
                "the direction is target minus the emotions the image already evokes (EmoEditor), so edits move "
                "away from the current mood and toward the target."
            ),
            inputs=[
                emotion_combo("target_emotion", default="awe",
                              tooltip="The emotion the image should evoke (Mikels' 8; positives first)."),
                io.Float.Input("strength", default=1.0, min=STRENGTH_RANGE[0], max=STRENGTH_RANGE[1], step=0.05,
                               tooltip="How strongly to push: 0 = no change, 1 = the paper's setting, 2 = exaggerated."),
                io.String.Input("blend", default="", optional=True,
                                tooltip="Optional blend of targets, e.g. 'awe:0.7, contentment:0.3'. "
                                "When filled in, it replaces target_emotion."),
                io.Image.Input("source_image", optional=True,
                               tooltip="The image to edit. Its emotions (read by the critic) are subtracted from "
                               "the target. A batch is averaged."),
                EmotionCriticType.Input("critic", optional=True,
                                        tooltip="Emotion critic that reads the source image. Required with a source image."),
            ],
            outputs=[
                EmotionDirectionType.Output("direction", display_name="direction",
                                            tooltip="8-way emotion direction with its strength."),
                io.String.Output("report", display_name="report",
                                 tooltip="JSON: target, strength, direction and the source's 8-way distribution."),
            ],
        )

    @classmethod
    def execute(cls, target_emotion: str, strength: float, blend: str = "", source_image=None, critic=None) -> io.NodeOutput:
        target = blend if blend and blend.strip() else target_emotion
        source = None
        if source_image is not None:
            if critic is None:
                raise InvalidInputError("source_image is connected but critic is not; connect a Load Emotion Critic node")
            source = source_distribution(run_critic(critic, source_image, "source_image"))
        direction = make_direction(target, strength, source)
        report = direction.to_json()
        text = json.dumps(report)
        ui = {"text": [format_report(report)], "emotion_direction": [report]}
        return io.NodeOutput(direction, text, ui=ui)


NODES = [EmotionDirectionNode]
