"""Every node's inputs checked against its own schema before ``execute`` runs.

ComfyUI's prompt validation checks widget ranges and link types before a node runs,
but API prompts (NaN is valid JSON to Python), other custom nodes and scripts call
nodes too. ``CheckedNode`` repeats those checks in one place and adds what ComfyUI
does not check (finite numbers, non-empty conditioning and latents), so every node
fails the same way: an ``InvalidInputError`` naming the input and what it expects.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import torch
from comfy_api.latest import io

from emotion_core.critics.base import EmotionCritic
from emotion_core.direction import EmotionDirection
from emotion_core.errors import InvalidInputError
from emotion_core.visual_prompt.adapter import VisualPromptAdapter
from emotion_core.visual_prompt.flux_ip_adapter import FluxIPAdapter
from emotion_core.visual_prompt.prompt import VisualPrompt

from .model_folders import model_path

SHOWN_CHARS = 40
SHOWN_OPTIONS = 12
# Pack socket types -> the Python class a value must be.
PACK_TYPES = {
    "EMOTION_DIRECTION": (EmotionDirection, "Emotion Direction"),
    "EMOTION_CRITIC": (EmotionCritic, "Load Emotion Critic"),
    "VISUAL_PROMPT_ADAPTER": ((VisualPromptAdapter, FluxIPAdapter), "Load Visual Prompt Adapter"),
    "VISUAL_PROMPT": (VisualPrompt, "Emotion Visual Prompt Bank"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _number(name: str, value: Any, integer: bool, low, high) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidInputError(f"{name}: expected {'an integer' if integer else 'a number'}, got {_shown(value)}")
    if not math.isfinite(value):
        raise InvalidInputError(f"{name}: expected a finite number, got {value}")
    if low is not None and value < low or high is not None and value > high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")


def _tensor(name: str, value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"{name}: expected {what}, got {type(value).__name__}")
    return value


def _latent(name: str, value: Any) -> None:
    if not isinstance(value, dict) or "samples" not in value:
        raise InvalidInputError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(value).__name__}")
    samples = _tensor(name, value["samples"], "a latent tensor in 'samples'")
    if samples.ndim not in (4, 5) or samples.numel() == 0:
        raise InvalidInputError(f"{name}: expected non-empty latent samples [B,C,h,w], got {tuple(samples.shape)}")
    if not torch.isfinite(samples).all():
        raise InvalidInputError(f"{name}: the latent holds NaN or infinite values")


def _conditioning(name: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{name}: expected a CONDITIONING (a non-empty list of [tensor, dict]), "
                                f"got {_shown(value)}")
    for entry in value:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)
                and isinstance(entry[1], dict)):
            raise InvalidInputError(f"{name}: every CONDITIONING entry must be [tensor, dict], got {_shown(entry)}")


def _combo(name: str, value: Any, options, model_folder: str | None, any_case: bool) -> None:
    """A combo value must be one of its options: ComfyUI does not check V3 combos, and an
    unknown sampler name would otherwise fail deep inside sampling. A model file that is not
    listed is looked up in its folder, whose error names the folders searched."""
    if model_folder is not None:
        if not isinstance(value, str):
            raise InvalidInputError(f"{name}: expected a file name from models/{model_folder}, got {_shown(value)}")
        if value not in options:
            model_path(model_folder, value)
        return
    if not options or not all(isinstance(option, str) for option in options):
        return
    if not isinstance(value, str):
        raise InvalidInputError(f"{name}: expected one of the listed names, got {_shown(value)}")
    if value not in options and not (any_case and value.strip().lower() in options):
        listed = ", ".join(options[:SHOWN_OPTIONS]) + (f", ... ({len(options)} in all)" if len(options) > SHOWN_OPTIONS
                                                       else "")
        raise InvalidInputError(f"{name}: {_shown(value)} is not one of the options ({listed})")


def check_value(spec, value: Any) -> None:
    """One input against its schema entry (``spec`` is an ``io`` Input)."""
    name, kind = spec.id, spec.io_type
    if kind == "INT":
        _number(name, value, True, getattr(spec, "min", None), getattr(spec, "max", None))
    elif kind == "FLOAT":
        _number(name, value, False, getattr(spec, "min", None), getattr(spec, "max", None))
    elif kind == "STRING" and not isinstance(value, str):
        raise InvalidInputError(f"{name}: expected text, got {type(value).__name__}")
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        raise InvalidInputError(f"{name}: expected true or false, got {_shown(value)}")
    elif kind == "COMBO":
        _combo(name, value, spec.options, getattr(spec, "model_folder", None), getattr(spec, "any_case", False))
    elif kind == "IMAGE":
        _tensor(name, value, "an IMAGE tensor [B,H,W,C]")
    elif kind == "LATENT":
        _latent(name, value)
    elif kind == "CONDITIONING":
        _conditioning(name, value)
    elif kind in PACK_TYPES:
        expected, source = PACK_TYPES[kind]
        if not isinstance(value, expected):
            raise InvalidInputError(f"{name}: expected a {kind} (from {source}), got {type(value).__name__}")


def check_inputs(schema, values: dict[str, Any]) -> None:
    for spec in schema.inputs or []:
        value = values.get(spec.id)
        if value is None:
            if not spec.optional:
                raise InvalidInputError(f"{spec.id}: required input is missing")
            continue
        check_value(spec, value)


class CheckedNode(io.ComfyNode):
    """A V3 node whose ``execute`` first checks its inputs against ``define_schema``."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        # ComfyUI re-creates node classes (class clones, locked classes) from their dict:
        # an execute that is already checked is left alone (a locked class refuses setattr)
        if execute is None or getattr(execute.__func__, "inputs_checked", False):
            return
        function = execute.__func__
        signature = inspect.signature(function)
        owner = next(iter(signature.parameters))  # the ``cls`` parameter

        @functools.wraps(function)
        def checked(node_cls, *args, **values):
            bound = signature.bind(node_cls, *args, **values)
            bound.apply_defaults()
            check_inputs(node_cls.define_schema(), {k: v for k, v in bound.arguments.items() if k != owner})
            return function(node_cls, *args, **values)

        checked.inputs_checked = True
        cls.execute = classmethod(checked)
