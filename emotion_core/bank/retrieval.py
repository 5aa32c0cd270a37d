"""Bank retrievals -> a VISUAL_PROMPT for the injector: the retrieved visual centres
go through the adapter's own image projection, exactly as CLIP vision features
of real images would (``image_embeds`` for base adapters, penultimate hidden
states for plus adapters, whichever the bank was built for).

Roles: the target emotion's tokens are ``positive``; another emotion's tokens for the
same text are ``negative_visual`` (the three-branch guider's negative visual branch,
MC-Diffusion's negative visual prompt); ``negative`` (the unconditional branch) always
gets the adapter's "no image" tokens, so ordinary CFG stays plain."""

from __future__ import annotations

import dataclasses
import logging

import torch

from ..errors import InvalidInputError
from ..taxonomy import parse_emotion
from ..visual_prompt.adapter import VisualPromptAdapter
from ..visual_prompt.flux_layout import FLUX, check_flux_bank
from ..visual_prompt.layout import AdapterLayout
from ..visual_prompt.prompt import NEGATIVE, NEGATIVE_VISUAL, POSITIVE, VisualPrompt
from .store import PromptBank, Retrieval

log = logging.getLogger(__name__)

# "weighted": one image's worth of tokens from the similarity-weighted mean of the retrieved
# centres; "concat": every retrieved centre's tokens, attention draws on each.
BANK_COMBINE_MODES = ("weighted", "concat")


def check_bank_fits(bank: PromptBank, adapter: VisualPromptAdapter) -> None:
    check_bank_fits_layout(bank, adapter.layout)


def check_bank_fits_layout(bank: PromptBank, layout: AdapterLayout) -> None:
    """The bank must be built for this adapter's variant (base: pooled ``image_embeds``; plus:
    CLIP vision hidden states) and the features must have the adapter's width."""
    kind = bank.kind
    encoder = bank.metadata.get("image_encoder", {})
    described = f"{encoder.get('kind', '?')} {encoder.get('name', '?')}"
    if layout.family == FLUX:  # Flux IP-Adapters: XLabs reads ViT-L image_embeds, the rest name both families
        return check_flux_bank(kind.name, kind.feature, int(bank.kind_centres(bank.emotions[0]).shape[-1]), layout,
                               bank.visual_dim)
    if layout.variant != kind.adapter_variant:
        build = "--clip-vision DIR --kind ip-adapter-plus" if layout.variant == "plus" else "--kind ip-adapter"
        raise InvalidInputError(
            f"this prompt bank was built for {kind.name} adapters ({kind.feature}); this {layout.family} "
            f"{layout.variant} adapter reads {layout.feature_name}. Use a {kind.adapter_variant} adapter, or build a "
            f"bank for it with `emotion-director bank build ... {build}`"
        )
    width = int(bank.kind_centres(bank.emotions[0]).shape[-1])
    if width != layout.feature_dim:
        raise InvalidInputError(
            f"the bank's visual centres are {width}-d ({described}) but this adapter reads "
            f"{layout.feature_dim}-d {layout.feature_name}; build the bank with the CLIP model the adapter was "
            "trained with (ViT-H/14 for the public SD1.5 and *_vit-h SDXL adapters)"
        )
    if encoder.get("kind") not in ("clip", "clip-vision"):
        log.warning("bank visual features come from %s, not CLIP; the adapter must have been trained on them",
                    described)


def combined_features(retrieval: Retrieval, combine: str) -> torch.Tensor:
    """The retrieved centres as adapter input: ``[1, ...]`` weighted mean, or all ``[k, ...]`` (concat)."""
    if combine not in BANK_COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {BANK_COMBINE_MODES}, got {combine!r}")
    features = retrieval.features
    if combine == "weighted":
        weights = retrieval.weights.reshape(-1, *([1] * (features.ndim - 1)))
        features = (weights * features).sum(dim=0, keepdim=True)
    return features


def _tokens(adapter: VisualPromptAdapter, retrieval: Retrieval, combine: str) -> torch.Tensor:
    tokens = adapter.project(combined_features(retrieval, combine))
    return tokens.reshape(-1, tokens.shape[-1]).cpu()


def pooled_for(adapter, bank: PromptBank, emotion: str, retrieval: Retrieval) -> Retrieval:
    """An InstantX Flux IP-Adapter reads a flux-redux bank's pooled SigLIP centres, not its sequences."""
    if adapter.layout.family != FLUX or bank.kind.group == "visual_centres":
        return retrieval
    pooled = bank.visual_centres[parse_emotion(emotion)][list(retrieval.indices)].float()
    return dataclasses.replace(retrieval, features=pooled)


def neutral_features(bank: PromptBank, copies: int = 1) -> torch.Tensor:
    """The "no image" input of the bank's kind: the neutral picture's features when the bank
    stores them (plus banks: hidden states, as image prompts use), else zero features (as in
    IP-Adapter training)."""
    stored = bank.neutral.get(bank.kind.group)
    if stored is not None and bank.kind.adapter_variant != "redux":
        return stored.float().repeat(copies, *[1] * (stored.ndim - 1))
    shape = bank.kind_centres(bank.emotions[0]).shape[1:]
    if bank.kind.adapter_variant == "redux":  # only Flux IP-Adapters read one: its pooled centres
        shape = bank.visual_centres[bank.emotions[0]].shape[1:]
    return torch.zeros(copies, *shape)


def bank_visual_prompt(adapter: VisualPromptAdapter, bank: PromptBank, emotion: str, query: torch.Tensor | None,
                       top_k: int, combine: str = "weighted", negative_emotion: str | None = None) -> VisualPrompt:
    """Positive tokens from ``emotion``'s retrieval; ``negative_visual`` tokens from
    ``negative_emotion``'s (same query), when given; the unconditional ``negative`` role
    always the adapter's "no image" tokens."""
    if combine not in BANK_COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {BANK_COMBINE_MODES}, got {combine!r}")
    check_bank_fits(bank, adapter)
    emotion = parse_emotion(emotion)
    negative_emotion = None if negative_emotion is None else parse_emotion(negative_emotion)
    retrieval = pooled_for(adapter, bank, emotion, bank.retrieve(emotion, query, top_k))
    log.info("bank %s: clusters %s, weights %s, cosine %s", emotion, retrieval.indices,
             [round(float(w), 3) for w in retrieval.weights], [round(s, 3) for s in retrieval.similarities])
    tokens = {POSITIVE: _tokens(adapter, retrieval, combine)}
    copies = len(retrieval.indices) if combine == "concat" else 1
    tokens[NEGATIVE] = adapter.project(neutral_features(bank)).reshape(-1, adapter.layout.cross_dim) \
        .repeat(copies, 1).cpu()
    if negative_emotion is not None:
        negative = pooled_for(adapter, bank, negative_emotion, bank.retrieve(negative_emotion, query, top_k))
        tokens[NEGATIVE_VISUAL] = _tokens(adapter, negative, combine)
    layout = adapter.layout
    source = f"bank:{emotion}" + (f"|neg:bank:{negative_emotion}" if negative_emotion else "")
    return VisualPrompt(tokens, layout.family, layout.variant, layout.cross_dim, source=source)
