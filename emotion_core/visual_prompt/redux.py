"""Visual prompts for Flux through ComfyUI's core Redux path.

Redux is a style model: ``CLIPVisionEncode`` (SigLIP so400m, 384 px) gives
``last_hidden_state [1, 729, 1152]``, and ``StyleModelApply`` projects it
(``redux_up`` 1152 -> 12288, SiLU, ``redux_down`` -> 4096) into T5-space tokens it
appends to the text conditioning. A prompt bank of kind ``flux-redux`` stores
SigLIP-space centres of that sequence per cluster, so a retrieval gives the same
CLIP_VISION_OUTPUT an image would: the bank node feeds the core ``Apply Style
Model`` unchanged. MC-Diffusion's negative visual prompt on Flux is the same
text through ``Apply Style Model`` with another emotion's retrieval.
"""

from __future__ import annotations

import logging

import torch

from ..bank.store import FLUX_REDUX, PromptBank
from ..errors import InvalidInputError
from ..taxonomy import parse_emotion

log = logging.getLogger(__name__)

SIGLIP_DIM = 1152  # SigLIP so400m width; ComfyUI's Redux style model reads it
REDUX_COMBINE_MODES = ("weighted", "concat")
_BANK_FAMILIES = {"ip-adapter": "SD1.5/SDXL IP-Adapter base", "ip-adapter-plus": "SD1.5/SDXL IP-Adapter plus"}


class SiglipOutput:
    """A CLIP_VISION_OUTPUT as ``comfy.clip_vision.Output`` is (item access = attributes), holding
    what ComfyUI's SigLIP encode gives: ``last_hidden_state`` and ``image_embeds`` (for SigLIP
    both are the post-layernorm sequence)."""

    def __init__(self, sequence: torch.Tensor):
        self.last_hidden_state = sequence
        self.image_embeds = sequence

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value) -> None:
        setattr(self, key, value)


def check_redux_bank(bank: PromptBank) -> None:
    """Only a bank built for Flux Redux holds SigLIP-space centres; others name both families."""
    kind = bank.kind
    if kind != FLUX_REDUX:
        raise InvalidInputError(
            f"this prompt bank was built for {_BANK_FAMILIES.get(kind.name, kind.name)} adapters ({kind.feature}), "
            "but the Flux Redux path reads SigLIP last_hidden_state; build a bank with --kind flux-redux for Flux"
        )
    width = int(bank.kind_centres(bank.emotions[0]).shape[-1])
    if width != SIGLIP_DIM:
        raise InvalidInputError(f"the bank's SigLIP centres are {width}-d; Flux Redux reads {SIGLIP_DIM}-d SigLIP "
                                "so400m features")


def check_style_model(redux_in_features: int, width: int) -> None:
    """The Redux file must read the bank's SigLIP width (a clear error, not a matmul failure at sampling)."""
    if redux_in_features != width:
        raise InvalidInputError(f"this Redux style model reads {redux_in_features}-d image features but the bank's "
                                f"SigLIP centres are {width}-d; use the Redux model made for SigLIP so400m")


def redux_sequence(bank: PromptBank, emotion: str, query: torch.Tensor | None, top_k: int,
                   combine: str = "weighted") -> torch.Tensor:
    """``[1, T, 1152]`` SigLIP sequence for ``emotion``: the similarity-weighted mean of the retrieved
    centres (one image's worth of tokens), or every centre's tokens one after another (``concat``)."""
    if combine not in REDUX_COMBINE_MODES:
        raise InvalidInputError(f"combine must be one of {REDUX_COMBINE_MODES}, got {combine!r}")
    check_redux_bank(bank)
    retrieval = bank.retrieve(parse_emotion(emotion), query, top_k)
    log.info("redux bank %s: clusters %s, weights %s", emotion, retrieval.indices,
             [round(float(w), 3) for w in retrieval.weights])
    centres = retrieval.features  # [k, T, D]
    if combine == "weighted":
        return (retrieval.weights[:, None, None] * centres).sum(dim=0, keepdim=True)
    return centres.reshape(1, -1, centres.shape[-1])
