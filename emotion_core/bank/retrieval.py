"""Bank retrievals -> a VISUAL_PROMPT for the injector: the retrieved visual centres
go through the adapter's own image projection, exactly as CLIP vision
``image_embeds`` of real images would."""

from __future__ import annotations

import logging

import torch

from ..errors import InvalidInputError
from ..taxonomy import parse_emotion
from ..visual_prompt.adapter import VisualPromptAdapter
from ..visual_prompt.layout import BASE
from ..visual_prompt.prompt import NEGATIVE, POSITIVE, VisualPrompt
from .store import PromptBank, Retrieval

log = logging.getLogger(__name__)

# "weighted": one image's worth of tokens from the similarity-weighted mean of the retrieved
# centres; "concat": every retrieved centre's tokens, attention draws on each.
BANK_COMBINE_MODES = ("weighted", "concat")


def check_bank_fits(bank: PromptBank, adapter: VisualPromptAdapter) -> None:
    """Bank centres are pooled image features: only base adapters (``image_embeds``) of the same width read them."""
    layout = adapter.layout
    encoder = bank.metadata.get("image_encoder", {})
    described = f"{encoder.get('kind', '?')} {encoder.get('name', '?')}"
    if layout.variant != BASE:
        raise InvalidInputError(
            f"prompt banks hold pooled image features (image_embeds); this {layout.family} plus adapter reads CLIP "
            "hidden states. Use a base adapter (e.g. ip-adapter_sd15) with a bank"
        )
    if bank.visual_dim != layout.feature_dim:
        raise InvalidInputError(
            f"the bank's visual centres are {bank.visual_dim}-d ({described}) but this adapter reads "
            f"{layout.feature_dim}-d image_embeds; build the bank with the CLIP model the adapter was trained with "
            "(open_clip ViT-H-14 for the public SD1.5 and *_vit-h SDXL adapters)"
        )
    if encoder.get("kind") != "clip":
        log.warning("bank visual features come from %s, not CLIP; the adapter must have been trained on them",
                    described)


def _tokens(adapter: VisualPromptAdapter, retrieval: Retrieval, combine: str) -> torch.Tensor:
    features = retrieval.features
    if combine == "weighted":
        features = (retrieval.weights[:, None] * features).sum(dim=0, keepdim=True)
    tokens = adapter.project(features)
    return tokens.reshape(-1, tokens.shape[-1]).cpu()


def bank_visual_prompt(adapter: VisualPromptAdapter, bank: PromptBank, emotion: str, query: torch.Tensor | None,
                       top_k: int, combine: str = "weighted", negative_emotion: str | None = None) -> VisualPrompt:
    """Positive tokens from ``emotion``'s retrieval; negative tokens from ``negative_emotion``'s
    (same query) or the adapter's "no image" tokens (zero features, as in IP-Adapter training)."""
    if combine not in BANK_COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {BANK_COMBINE_MODES}, got {combine!r}")
    check_bank_fits(bank, adapter)
    emotion = parse_emotion(emotion)
    negative_emotion = None if negative_emotion is None else parse_emotion(negative_emotion)
    retrieval = bank.retrieve(emotion, query, top_k)
    log.info("bank %s: clusters %s, weights %s, cosine %s", emotion, retrieval.indices,
             [round(float(w), 3) for w in retrieval.weights], [round(s, 3) for s in retrieval.similarities])
    positive = _tokens(adapter, retrieval, combine)
    if negative_emotion is not None:
        negative = _tokens(adapter, bank.retrieve(negative_emotion, query, top_k), combine)
    else:
        copies = len(retrieval.indices) if combine == "concat" else 1
        neutral = torch.zeros(1, bank.visual_dim)
        negative = adapter.project(neutral).reshape(-1, adapter.layout.cross_dim).repeat(copies, 1).cpu()
    layout = adapter.layout
    source = f"bank:{emotion}" + (f"/-{negative_emotion}" if negative_emotion else "")
    return VisualPrompt({POSITIVE: positive, NEGATIVE: negative}, layout.family, layout.variant, layout.cross_dim,
                        source=source)
