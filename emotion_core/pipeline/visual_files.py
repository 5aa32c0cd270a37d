"""Visual prompts from files for the pipeline: the adapter, the CLIP vision encoder it was
trained with and the prompt images, with the negative visual prompt's tokens set as every
prompt's negative visual role (the third branch of negative visual guidance)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..guidance import with_negative_visual
from ..images import load_image
from ..visual_prompt import VisualPrompt, VisualPromptAdapter, load_adapter
from .visual import load_image_encoder, visual_prompts_from_images


def load_visual_prompts(adapter_file: str | os.PathLike, encoder_folder: str | os.PathLike,
                        images: Sequence[tuple[str | os.PathLike, float]],
                        negative_images: Sequence[str | os.PathLike] = (), device: str | torch.device = "cpu",
                        ) -> tuple[VisualPromptAdapter, list[tuple[VisualPrompt, float]]]:
    """``(adapter, [(VisualPrompt, weight), ...])`` from ``(image file, weight)`` pairs; the
    encoder is only needed here, so it is freed when this returns."""
    adapter = load_adapter(adapter_file)
    encoder = load_image_encoder(encoder_folder, device=device)
    prompts = visual_prompts_from_images(adapter, encoder, [(load_image(path), weight) for path, weight in images])
    if negative_images:
        negative = visual_prompts_from_images(adapter, encoder, [(load_image(path), 1.0) for path in negative_images])
        prompts = [(with_negative_visual(prompt, negative[0][0]), weight) for prompt, weight in prompts]
    return adapter, prompts
