"""The prompt bank file format and retrieval.

A bank is a safetensors file: per emotion ``text_centres.<emotion> [K, Dt]``
(L2-normalised), ``visual_centres.<emotion> [K, Dv]`` (mean raw pooled image features
of the cluster's members) and ``counts.<emotion> [K]``; plus ``text_probe [P, Dt]``,
the text features of ``PROBE_TEXTS``. The metadata names the open_clip file whose
text tower made the text features. At retrieval that file is loaded again and
must reproduce ``text_probe``: a renamed or swapped file would otherwise give
queries in another feature space and silently meaningless retrievals.

The metadata's ``built_for`` names the adapter kind the visual side serves (see
``BANK_KINDS``); a kind that reads more than pooled features stores its per-cluster
tensors beside the others as ``<kind tensor group>.<emotion>`` (``ip-adapter-plus``:
``visual_hidden_centres.<emotion> [K, T, D]``, the mean penultimate CLIP vision hidden
states). Banks without ``built_for`` (built before kinds existed) are ``ip-adapter``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError, ModelFormatError
from ..taxonomy import EMOTIONS, parse_emotion
from ..weights import load_state_dict, read_metadata, save_safetensors

log = logging.getLogger(__name__)

BANK_KIND = "emotion_prompt_bank"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BankKind:
    """What a bank's visual side was built for: the adapter variant that reads it, the
    image feature, and the per-cluster tensor group holding it (``[K, D]`` or ``[K, T, D]``)."""

    name: str
    adapter_variant: str
    feature: str
    group: str
    rank: int  # of one centre: 1 = pooled [D], 2 = token sequence [T, D]


IP_ADAPTER = BankKind("ip-adapter", "base", "image_embeds", "visual_centres", 1)
IP_ADAPTER_PLUS = BankKind("ip-adapter-plus", "plus", "penultimate_hidden_states", "visual_hidden_centres", 2)
# Flux Redux: SigLIP so400m last_hidden_state centres [K, T, 1152], which ComfyUI's Redux style model
# projects into T5-space tokens (visual_prompt.redux); "redux" is the style model, not an IP-Adapter variant.
FLUX_REDUX = BankKind("flux-redux", "redux", "last_hidden_state", "siglip_centres", 2)
BANK_KINDS = {kind.name: kind for kind in (IP_ADAPTER, IP_ADAPTER_PLUS, FLUX_REDUX)}
CENTRE_GROUPS = ("text_centres", "visual_centres", "counts", *sorted({k.group for k in BANK_KINDS.values()}
                                                                       - {"visual_centres"}))


def bank_kind(name: str) -> BankKind:
    if name not in BANK_KINDS:
        raise InvalidInputError(f"unknown prompt bank kind {name!r}; one of: {', '.join(BANK_KINDS)}")
    return BANK_KINDS[name]
PROBE_TEXTS = tuple(f"a photo that evokes {emotion}." for emotion in EMOTIONS)
# Softmax temperature over cosine similarities of retrieved centres (CLIP's own logit scale is 1/0.01).
RETRIEVAL_TEMPERATURE = 0.05
# Text features of the same file agree to float rounding; another file lands far below this.
PROBE_MIN_COSINE = 0.999


@dataclass(frozen=True)
class Retrieval:
    features: torch.Tensor  # [k, Dv] visual centres of the bank's kind ([k, T, D] for a token kind)
    weights: torch.Tensor  # [k], sums to 1
    indices: tuple[int, ...]
    similarities: tuple[float, ...]  # cosine to the query (empty without a query)


@dataclass(frozen=True)
class PromptBank:
    text_centres: Mapping[str, torch.Tensor]
    visual_centres: Mapping[str, torch.Tensor]
    counts: Mapping[str, torch.Tensor]
    text_probe: torch.Tensor
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # kind tensor group (other than visual_centres) -> emotion -> [K, ...]
    extra_centres: Mapping[str, Mapping[str, torch.Tensor]] = field(default_factory=dict)
    # kind tensor group -> [1, ...]: the encoder's features of the neutral "no image" picture
    # (plus adapters' unconditional input, as for image prompts); absent: zero features
    neutral: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.text_centres:
            raise ModelFormatError("the prompt bank holds no emotions")
        kind = self.kind
        if kind.group != "visual_centres":
            group = self.extra_centres.get(kind.group, {})
            for emotion in self.text_centres:
                centres = group.get(emotion)
                if centres is None or centres.ndim != kind.rank + 1 or \
                        centres.shape[0] != self.text_centres[emotion].shape[0]:
                    shape = None if centres is None else tuple(centres.shape)
                    raise ModelFormatError(f"prompt bank built for {kind.name}: {kind.group}.{emotion} is {shape}, "
                                           f"expected one centre of rank {kind.rank} per cluster")
        dims = set()
        for emotion in self.text_centres:
            text, visual, counts = (self.text_centres[emotion], self.visual_centres.get(emotion),
                                    self.counts.get(emotion))
            if visual is None or counts is None:
                raise ModelFormatError(f"prompt bank: {emotion!r} has text centres but no visual centres or counts")
            if text.ndim != 2 or visual.ndim != 2 or counts.ndim != 1 or not text.shape[0] == visual.shape[0] == \
                    counts.shape[0] or text.shape[0] == 0:
                raise ModelFormatError(f"prompt bank: {emotion!r} has text {tuple(text.shape)}, visual "
                                       f"{tuple(visual.shape)}, counts {tuple(counts.shape)}; expected [K,Dt], [K,Dv], [K]")
            dims.add((text.shape[1], visual.shape[1]))
        if len(dims) != 1:
            raise ModelFormatError(f"prompt bank: emotions disagree on feature widths {sorted(dims)}")
        if self.text_probe.ndim != 2 or self.text_probe.shape != (len(PROBE_TEXTS), self.text_dim):
            raise ModelFormatError(f"prompt bank: text_probe has shape {tuple(self.text_probe.shape)}, expected "
                                   f"[{len(PROBE_TEXTS)}, {self.text_dim}]")

    @property
    def kind(self) -> BankKind:
        name = self.metadata.get("built_for", IP_ADAPTER.name)
        if name not in BANK_KINDS:
            raise ModelFormatError(f"prompt bank built for {name!r}, which this version does not know "
                                   f"(it reads: {', '.join(BANK_KINDS)})")
        return BANK_KINDS[name]

    def kind_centres(self, emotion: str) -> torch.Tensor:
        """The centres the bank's kind serves: ``[K, D]`` or ``[K, T, D]``."""
        group = self.kind.group
        return self.visual_centres[emotion] if group == "visual_centres" else self.extra_centres[group][emotion]

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(e for e in EMOTIONS if e in self.text_centres)

    @property
    def text_dim(self) -> int:
        return next(iter(self.text_centres.values())).shape[1]

    @property
    def visual_dim(self) -> int:
        return next(iter(self.visual_centres.values())).shape[1]

    @property
    def text_encoder_file(self) -> str:
        name = self.metadata.get("text_encoder", {}).get("file")
        if not isinstance(name, str) or not name:
            raise ModelFormatError("prompt bank metadata does not name its text encoder file (text_encoder.file)")
        return name

    def check_text_encoder(self, encode: Callable[[Sequence[str]], torch.Tensor]) -> None:
        """Fail unless ``encode`` is the text tower this bank was built with."""
        probe = encode(list(PROBE_TEXTS))
        if probe.shape != self.text_probe.shape:
            raise InvalidInputError(f"the text encoder gives {probe.shape[-1]}-d features but the bank's text centres "
                                    f"are {self.text_dim}-d; use {self.text_encoder_file}, the file the bank was built with")
        agreement = float(F.cosine_similarity(probe.float(), self.text_probe.float(), dim=-1).min())
        if agreement < PROBE_MIN_COSINE:
            raise InvalidInputError(f"the text encoder file is not the one this bank was built with "
                                    f"({self.text_encoder_file}): its features differ (cosine {agreement:.3f}); "
                                    "rebuild the bank or restore the original file")

    def retrieve(self, emotion: str, query: torch.Tensor | None, top_k: int) -> Retrieval:
        """The ``top_k`` visual centres of ``emotion`` whose text centres are closest (cosine) to
        ``query [Dt]``, softmax-weighted by similarity; without a query the largest clusters,
        weighted by size."""
        emotion = parse_emotion(emotion)
        if emotion not in self.text_centres:
            raise InvalidInputError(f"this prompt bank has no {emotion!r} images; it holds: {', '.join(self.emotions)}")
        if top_k < 1:
            raise InvalidInputError(f"top_k must be at least 1, got {top_k}")
        centres, counts = self.text_centres[emotion].float(), self.counts[emotion].float()
        k = min(top_k, centres.shape[0])
        if query is None:
            order = torch.argsort(counts, descending=True, stable=True)[:k]
            weights, similarities = counts[order] / counts[order].sum(), ()
        else:
            if query.shape != (self.text_dim,):
                raise InvalidInputError(f"query features have shape {tuple(query.shape)}, expected [{self.text_dim}]")
            cosine = F.normalize(centres, dim=-1) @ F.normalize(query.float(), dim=0)
            order = torch.argsort(cosine, descending=True, stable=True)[:k]
            weights = torch.softmax(cosine[order] / RETRIEVAL_TEMPERATURE, dim=0)
            similarities = tuple(float(c) for c in cosine[order])
        return Retrieval(self.kind_centres(emotion)[order].float(), weights, tuple(int(i) for i in order),
                         similarities)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"text_probe": self.text_probe}
        for emotion in self.emotions:
            out[f"text_centres.{emotion}"] = self.text_centres[emotion]
            out[f"visual_centres.{emotion}"] = self.visual_centres[emotion]
            out[f"counts.{emotion}"] = self.counts[emotion]
            for group, centres in self.extra_centres.items():
                out[f"{group}.{emotion}"] = centres[emotion]
        for group, tensor in self.neutral.items():
            out[f"neutral.{group}"] = tensor
        return out


def save_bank(bank: PromptBank, path: str | Path) -> Path:
    """Atomic write (temp file + rename): an interrupted save leaves no partial bank."""
    metadata = {"built_for": bank.kind.name, **bank.metadata, "kind": BANK_KIND, "format_version": FORMAT_VERSION}
    return save_safetensors(bank.tensors(), path, metadata)


def load_bank(path: str | Path) -> PromptBank:
    path = Path(path)
    metadata = read_metadata(path)
    if metadata.get("kind") != BANK_KIND:
        raise ModelFormatError(f"{path.name} is not a prompt bank (metadata kind {metadata.get('kind')!r}); build one "
                               "with `emotion-director bank build`")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path.name}: prompt bank format {metadata.get('format_version')!r} is not supported "
                               f"(this version reads {FORMAT_VERSION}); rebuild it")
    state = load_state_dict(path)
    groups: dict[str, dict[str, torch.Tensor]] = {group: {} for group in CENTRE_GROUPS}
    neutral = {}
    for key, tensor in state.items():
        group, _, emotion = key.partition(".")
        if group in groups and emotion in EMOTIONS:
            groups[group][emotion] = tensor
        elif group == "neutral" and emotion in CENTRE_GROUPS:
            neutral[emotion] = tensor
        elif key != "text_probe":
            raise ModelFormatError(f"{path.name}: unexpected tensor {key!r} in a prompt bank")
    if "text_probe" not in state:
        raise ModelFormatError(f"{path.name}: prompt bank without text_probe")
    try:
        extra = {g: groups[g] for g in CENTRE_GROUPS[3:] if groups[g]}
        return PromptBank(groups["text_centres"], groups["visual_centres"], groups["counts"], state["text_probe"],
                          metadata, extra, neutral)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path.name}: {exc}") from exc
