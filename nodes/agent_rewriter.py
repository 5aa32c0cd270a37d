"""Agent Prompt Rewriter: MC-Agent's multi-agent chain-of-concept prompt rewrite."""

from __future__ import annotations

from comfy_api.latest import io

from emotion_core.agents import BACKENDS, MAX_AGENTS, BackendSettings, rewrite
from emotion_core.agents.explain import explain
from emotion_core.agents.rewrite_flow import MAX_TOKEN_BUDGET, MIN_TOKEN_BUDGET

from .common import emotion_combo
from .input_checks import CheckedNode
from .types import EmotionDirectionType

CATEGORY = "Emotion Director/Prompt"
TRANSCRIPT_JSON_MARK = "--- transcript JSON ---"  # the readable tree comes first, the JSON after this line


class AgentPromptRewriter(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AgentPromptRewriter",
            display_name="Agent Prompt Rewriter",
            category=CATEGORY,
            description=(
                "Rewrites a plain prompt so the image shows an emotion through what is drawn (scene, objects, "
                "colour, light, weather, framing, faces, actions) instead of naming it. Each persona agent works "
                "a chain of concept: it appraises your subject (setting, scale, people, time, weather), picks "
                "concepts, and turns them into elements and phrases that fit this subject. In a second round "
                "the agents critique each other's phrases and vote with reasons; the winners are kept within "
                "CLIP's 77 tokens, your prompt word for word; a negative prompt comes from the opposite "
                "emotions. Offline by default."
            ),
            inputs=[
                io.String.Input("prompt", multiline=True, default="a lighthouse on a cliff",
                                tooltip="The plain prompt. Its subject and scene are kept word for word."),
                emotion_combo("emotion", default="awe",
                              tooltip="Target emotion. Ignored when an emotion direction is connected."),
                io.Int.Input("agents", default=5, min=1, max=MAX_AGENTS,
                             tooltip="How many persona agents propose concepts (painter, photographer, child, "
                             "psychologist, film director, poet, set designer, photojournalist)."),
                io.Float.Input("creativity", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="0 = the most-voted concepts every time; higher = more varied, less "
                               "cliché choices across seeds."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="Same seed, same rewrite (with the builtin backend)."),
                io.Combo.Input("backend", options=list(BACKENDS), default="builtin",
                               tooltip="builtin: offline knowledge base. openai-compatible: any OpenAI-style "
                               "chat server (key from EMOTION_DIRECTOR_LLM_API_KEY or OPENAI_API_KEY). "
                               "llama-cpp: a local .gguf model. LLM failures fall back to builtin with a warning."),
                io.String.Input("base_url", default="http://127.0.0.1:11434/v1",
                                tooltip="openai-compatible only: the server's base URL, as for OpenAI clients. "
                                "API keys are read from the environment, never from this node."),
                io.String.Input("model", default="",
                                tooltip="openai-compatible: model name as the server lists it. "
                                "llama-cpp: path of the .gguf model file."),
                io.Float.Input("timeout", default=30.0, min=1.0, max=600.0, step=1.0,
                               tooltip="Seconds the LLM agents may take per round (proposals, then votes); an "
                               "agent late in a round falls back to builtin for that round."),
                io.Int.Input("token_budget", default=77, min=MIN_TOKEN_BUDGET, max=MAX_TOKEN_BUDGET,
                             tooltip="CLIP tokens for the rewritten prompt, start and end tokens included "
                             "(77 = one CLIP chunk)."),
                EmotionDirectionType.Input("emotion_direction", optional=True,
                                           tooltip="Optional: rewrite toward this direction's strongest target "
                                           "emotion instead of the emotion widget."),
            ],
            outputs=[
                io.String.Output("rewritten_prompt", display_name="prompt",
                                 tooltip="The prompt, rewritten to show the emotion."),
                io.String.Output("negative_prompt", display_name="negative",
                                 tooltip="Concepts of the opposite-valence emotions, for the negative prompt."),
                io.String.Output("transcript", display_name="transcript",
                                 tooltip="Readable: each agent's chain (appraisal, concepts, elements, phrases) and "
                                 "its round-2 votes with reasons, what was kept and why, then the full JSON."),
            ],
        )

    @classmethod
    def execute(cls, prompt: str, emotion: str, agents: int, creativity: float, seed: int, backend: str,
                base_url: str, model: str, timeout: float, token_budget: int,
                emotion_direction=None) -> io.NodeOutput:
        target = emotion_direction.primary if emotion_direction is not None else emotion
        settings = BackendSettings(backend, base_url, model, timeout)
        result = rewrite(prompt, target, agents=agents, creativity=creativity, seed=seed, backend=settings,
                         token_budget=token_budget)
        shown = [result.rewrite, f"negative: {result.negative}", *(f"warning: {w}" for w in result.warnings)]
        transcript = f"{explain(result.transcript)}\n\n{TRANSCRIPT_JSON_MARK}\n{result.transcript_json()}"
        return io.NodeOutput(result.rewrite, result.negative, transcript, ui={"text": shown})


NODES = [AgentPromptRewriter]
