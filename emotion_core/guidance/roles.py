"""Which visual prompt tokens each guidance branch sees, one table for the ComfyUI guider
and the diffusers pipeline: conditions 0 (positive) and 1 (unconditional) as in ComfyUI,
and condition ``NEGATIVE_VISUAL_INDEX``, the same text with another emotion's visual prompt.
"""

from __future__ import annotations

from ..errors import InvalidInputError
from ..visual_prompt import GUIDER_ROLES_OPTION, NEGATIVE_VISUAL, POSITIVE, VisualPrompt

NEGATIVE_VISUAL_INDEX = 2


def negative_visual_roles() -> dict:
    """The guider roles option for visual prompt patches (ComfyUI ``transformer_options`` or the
    pipeline's ``patch_options``): condition ``NEGATIVE_VISUAL_INDEX`` reads the negative visual tokens."""
    return {GUIDER_ROLES_OPTION: {NEGATIVE_VISUAL_INDEX: NEGATIVE_VISUAL}}


def with_negative_visual(prompt: VisualPrompt, negative: VisualPrompt) -> VisualPrompt:
    """``prompt`` with ``negative``'s positive tokens as its negative visual role."""
    if (prompt.family, prompt.variant, prompt.cross_dim) != (negative.family, negative.variant, negative.cross_dim):
        raise InvalidInputError("the negative visual prompt was made for another adapter than the visual prompt")
    tokens = {**prompt.tokens, NEGATIVE_VISUAL: negative.tokens[POSITIVE]}
    return VisualPrompt(tokens, prompt.family, prompt.variant, prompt.cross_dim, f"{prompt.source}|neg:{negative.source}")
