"""The branches a prompt pair is sampled with: the positive prompt (the part the emotion
steers), the negative prompt and, with a negative visual prompt, a third branch of the same
steered text that attends to the other emotion's image tokens; plus the guidance that
combines them and the ``sample`` options that route each branch to its tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..guidance import (
    NEGATIVE_VISUAL_INDEX,
    Guidance,
    cfg_guidance,
    negative_visual_guidance,
    negative_visual_roles,
)
from .prompts import encode_prompts


@dataclass(frozen=True)
class PromptBranches:
    positive: torch.Tensor  # the prompt's hidden states [1, 77, D], before steering
    negative: torch.Tensor
    guidance: Guidance
    negative_visual: bool = False

    def embeddings(self, steered: torch.Tensor) -> list[torch.Tensor]:
        """The branch list for ``sample`` around a steered copy of ``positive``."""
        if self.negative_visual:
            return [steered, self.negative, steered]
        return [steered, self.negative]

    def sample_options(self) -> dict:
        """``sample`` keywords beyond the defaults: the third branch's condition index and roles."""
        if not self.negative_visual:
            return {}
        return {"condition_indices": [0, 1, NEGATIVE_VISUAL_INDEX], "patch_options": negative_visual_roles()}


def prompt_branches(pipe, prompt: str, negative_prompt: str, cfg: float, visual_guidance: float | None = None,
                    visual_guidance_schedule: str = "constant") -> PromptBranches:
    """Classifier-free guidance over ``[prompt, negative_prompt]``; with ``visual_guidance``
    (s_v) the three-branch negative visual guidance, whose third branch reads the visual
    prompts' negative visual tokens (``guidance.with_negative_visual``)."""
    positive, negative = encode_prompts(pipe, [prompt, negative_prompt])
    if visual_guidance is None:
        return PromptBranches(positive, negative, cfg_guidance(cfg))
    guidance = negative_visual_guidance(cfg, visual_guidance, visual_guidance_schedule)
    return PromptBranches(positive, negative, guidance, negative_visual=True)
