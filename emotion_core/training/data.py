"""Preference pairs -> what one DPO step needs: the two images as latents, the prompt's
text embedding and the two visual prompts as image tokens.

A visual prompt comes from a tokens file saved by the collector node (fixed tokens: the
per-layer keys/values still train), from images a pairs.jsonl row names (encoded by a
CLIP vision model), or, for pairs without recorded visual prompts (EmoPair, EmoSet),
from a prompt bank retrieved by the pair's caption (``bank_prompts``: cluster centres the
adapter's projection turns into tokens, so the projection trains too). Never the pair's
own images: the negative visual prompt is another emotion's prompt for the same caption.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from ..errors import InvalidInputError
from ..images import load_image, resize_shorter_center_crop, to_nchw
from ..preference import PreferencePair, VisualPromptRef
from ..weights import load_state_dict

if TYPE_CHECKING:
    from .bank_prompts import BankPromptPicker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisualSource:
    """One branch's visual prompt, exactly one of:

    - ``tokens [T, cross_dim]``: fixed image tokens (recorded by the collector node);
    - ``embeds``: image-encoder features the adapter's projection turns into tokens, so the
      projection trains too. ``[N, D]`` pooled ``image_embeds`` for base adapters, ``[N, T, D]``
      CLIP vision hidden states for plus (Resampler) adapters: the prompt bank's cluster centres;
    - ``images``: image paths to encode with the CLIP vision model.
    """

    tokens: torch.Tensor | None = None
    images: tuple = ()
    embeds: torch.Tensor | None = None

    @property
    def needs_encoder(self) -> bool:
        return self.tokens is None and self.embeds is None


def _recorded(ref: VisualPromptRef, cross_dim: int | None) -> VisualSource:
    if ref.tokens is not None:
        tensors = load_state_dict(ref.tokens)
        tokens = tensors.get(ref.role)
        if tokens is None or tokens.ndim != 2 or (cross_dim is not None and tokens.shape[1] != cross_dim):
            shape = None if tokens is None else tuple(tokens.shape)
            raise InvalidInputError(f"{ref.tokens.name}: {ref.role!r} tokens {shape}, expected [T, {cross_dim}] for "
                                    "this adapter")
        return VisualSource(tokens=tokens.float())
    return VisualSource(images=ref.images)


@dataclass(frozen=True)
class Example:
    pair: PreferencePair
    positive: VisualSource
    negative: VisualSource
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def needs_encoder(self) -> bool:
        return self.positive.needs_encoder or self.negative.needs_encoder


def _own_images(ref: VisualPromptRef | None, pair: PreferencePair) -> bool:
    """No visual prompt, or one that is only the pair's own images (not a visual prompt: the
    negative one must be another emotion's prompt for the same caption)."""
    return ref is None or (ref.tokens is None and set(ref.images) <= {pair.chosen, pair.rejected})


def needs_bank(pair: PreferencePair) -> bool:
    """Pairs read from EmoPair/EmoSet (or saved without visual prompts) get theirs from a bank."""
    return _own_images(pair.positive_visual, pair) or _own_images(pair.negative_visual, pair)


def _ref_provenance(ref: VisualPromptRef, emotion: str | None) -> dict:
    if ref.tokens is not None:
        return {"emotion": emotion, "source": ref.source or "recorded tokens", "tokens": ref.tokens.name,
                "role": ref.role}
    return {"emotion": emotion, "source": "images", "images": [p.name for p in ref.images]}


def pair_example(pair: PreferencePair, cross_dim: int | None, picker: "BankPromptPicker | None") -> Example:
    """The pair's recorded visual prompts where it has them (token files checked first: a bad
    one skips the pair), bank retrievals by its caption for the branches without (never the
    pair's own images)."""
    refs = (pair.positive_visual, pair.negative_visual)
    missing = [_own_images(ref, pair) for ref in refs]
    recorded = [None if gone else _recorded(ref, cross_dim) for ref, gone in zip(refs, missing)]
    picks = None
    if any(missing):
        if picker is None:
            raise InvalidInputError("this pair has no recorded visual prompts; pass --bank BANK to retrieve them "
                                    "from a prompt bank by the pair's caption")
        picks = picker.pick(pair.target_emotion, pair.negative_emotion, pair.prompt)
    sources, provenance = [], {"id": pair.id, "caption": pair.prompt, "chosen": str(pair.chosen),
                               "rejected": str(pair.rejected)}
    if "rejected_caption" in pair.extra:
        provenance["rejected_caption"] = pair.extra["rejected_caption"]
    for index, (role, ref, emotion) in enumerate((("positive", refs[0], pair.target_emotion),
                                                  ("negative", refs[1], pair.negative_emotion))):
        if missing[index]:
            sources.append(VisualSource(embeds=picks[index].embeds))
            provenance[role] = picks[index].provenance()
        else:
            sources.append(recorded[index])
            provenance[role] = _ref_provenance(ref, emotion)
    return Example(pair, sources[0], sources[1], provenance)


def prepare_examples(pairs: Sequence[PreferencePair], cross_dim: int | None, picker: "BankPromptPicker | None" = None
                     ) -> tuple[list[Example], list[tuple[str, str]]]:
    """Examples, and (pair id, reason) of pairs whose visual prompts are unusable (skipped).
    ``cross_dim`` None accepts recorded tokens of any width (a dry run, no adapter)."""
    if picker is not None:
        picker.encode([p.prompt for p in pairs if needs_bank(p)])
    examples, skipped = [], []
    for pair in pairs:
        try:
            examples.append(pair_example(pair, cross_dim, picker))
        except InvalidInputError as exc:
            skipped.append((pair.id, str(exc)))
    return examples, skipped


def load_square(path, size: int) -> torch.Tensor:
    """An image file as ``[1, 3, size, size]`` in 0..1 (shorter side resized, centre crop)."""
    return resize_shorter_center_crop(to_nchw(load_image(path)), size, mode="bicubic").clamp(0.0, 1.0)


def as_image(pixels: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> IMAGE ``[N, H, W, 3]``."""
    return pixels.permute(0, 2, 3, 1).contiguous()
