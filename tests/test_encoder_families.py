"""Emotion Conditioning on SDXL, Flux and SD3.5 conditioning layouts (no ComfyUI): family
detection from shapes, each encoder's delta in its own tokens and pooled vector, CLIP chunks
tiled, T5 tokens by position, and mismatched families as clear errors."""

from __future__ import annotations

import zlib
from functools import lru_cache

import pytest
import torch

from emotion_core.conditioning import EMOTION_DESCRIPTORS, Encoded, emotion_delta, steer_conditioning
from emotion_core.direction import make_direction
from emotion_core.encoder_families import check_conditioning_for_model, identify, segments
from emotion_core.errors import InvalidInputError


@lru_cache(maxsize=None)
def _word_vector(word: str, width: int, role: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(f"{role}:{word}".encode()))
    return torch.randn(width, generator=g)


def _word_vectors(text: str, width: int, role: str) -> torch.Tensor:
    """One deterministic vector per word (a stand-in for an encoder's per-token output)."""
    rows = [_word_vector(word, width, role) for word in text.split()]
    return torch.stack(rows) if rows else torch.zeros(0, width)


def _padded(rows: torch.Tensor, length: int, role: str) -> torch.Tensor:
    pad = _word_vectors("<pad>", rows.shape[1], role).expand(max(length - rows.shape[0], 0), -1)
    return torch.cat([rows, pad])[: max(length, rows.shape[0])]


class FamilyEncoder:
    """Each family's output structure as ComfyUI's encoders give it: SDXL concatenates CLIP-L (768)
    and CLIP-G (1280) per token in 77-token chunks with CLIP-G's pooled vector; Flux gives T5 tokens
    padded to ``t5_min`` with CLIP-L's pooled vector; SD3.5 gives the CLIP chunks zero-padded to 4096,
    then the T5 tokens, with the L + G pooled vector."""

    def __init__(self, family: str, t5_min: int = 16):
        self.family, self.t5_min = family, t5_min

    def clip(self, text: str, role: str, width: int) -> torch.Tensor:
        rows = _word_vectors(text, width, role)
        chunks = max(1, -(-rows.shape[0] // 77))
        return _padded(rows, 77 * chunks, role)

    def __call__(self, text: str) -> Encoded:
        pooled_l = _word_vectors(text or "<empty>", 768, "l").mean(0, keepdim=True)
        pooled_g = _word_vectors(text or "<empty>", 1280, "g").mean(0, keepdim=True)
        if self.family == "sdxl":
            tokens = torch.cat([self.clip(text, "l", 768), self.clip(text, "g", 1280)], dim=-1)
            return Encoded(tokens[None], pooled_g)
        t5 = _padded(_word_vectors(text, 4096, "t5"), self.t5_min, "t5")
        if self.family == "flux":
            return Encoded(t5[None], pooled_l)
        clip = torch.cat([self.clip(text, "l", 768), self.clip(text, "g", 1280)], dim=-1)
        clip = torch.nn.functional.pad(clip, (0, 4096 - clip.shape[-1]))
        return Encoded(torch.cat([clip, t5])[None], torch.cat([pooled_l, pooled_g], dim=-1))


def _conditioning(encoder: FamilyEncoder, text: str) -> list:
    encoded = encoder(text)
    return [[encoded.tokens, {"pooled_output": encoded.pooled, "guidance": 3.5}]]


def test_families_are_read_from_the_shapes():
    names = {f: identify(FamilyEncoder(f)("a cat").tokens, FamilyEncoder(f)("a cat").pooled).name
             for f in ("sdxl", "flux", "sd3")}
    assert names == {"sdxl": "SDXL", "flux": "Flux", "sd3": "SD3.5"}
    assert identify(torch.zeros(1, 77, 768), None).name == "SD1.5"
    sd3 = FamilyEncoder("sd3")("a cat on a mat").tokens
    assert segments(sd3, identify(sd3, torch.zeros(1, 2048))) == [("clip", 0, 77), ("t5", 77, 93)]


def test_sdxl_each_encoder_is_steered_and_pooled_output_stays_consistent():
    encoder = FamilyEncoder("sdxl")
    direction = make_direction("awe", 1.5)
    delta = emotion_delta(encoder, direction)
    original = _conditioning(encoder, "a lighthouse")
    (tokens, extras), = steer_conditioning(original, delta)
    descriptor, empty = encoder(EMOTION_DESCRIPTORS["awe"]), encoder("")
    weight = direction.scaled()[1].item()
    torch.testing.assert_close(tokens - original[0][0], weight * (descriptor.tokens - empty.tokens))
    # CLIP-G's pooled vector moves with its tokens (SDXL reads it through the ADM input)
    torch.testing.assert_close(extras["pooled_output"] - original[0][1]["pooled_output"],
                               weight * (descriptor.pooled - empty.pooled))
    assert extras["guidance"] == 3.5 and original[0][1]["pooled_output"] is not extras["pooled_output"]
    # a long prompt (two 77-token chunks) gets the delta in each chunk
    long_text = " ".join(f"w{i}" for i in range(100))
    (long_tokens, _), = steer_conditioning(_conditioning(encoder, long_text), delta)
    added = long_tokens - encoder(long_text).tokens
    torch.testing.assert_close(added[:, 77:], added[:, :77])


def test_flux_t5_tokens_by_position_and_clip_l_pooled():
    encoder = FamilyEncoder("flux", t5_min=16)
    delta = emotion_delta(encoder, make_direction("fear", 1.0))
    assert delta.tokens.shape == (1, 16, 4096) and delta.pooled.shape == (1, 768)
    long_text = " ".join(f"w{i}" for i in range(40))  # 40 T5 tokens: past the empty prompt's 16
    (tokens, extras), = steer_conditioning(_conditioning(encoder, long_text), delta)
    added = tokens - encoder(long_text).tokens
    torch.testing.assert_close(added[:, :16], delta.tokens)
    assert added[:, 16:].abs().max() == 0, "no T5 delta past the empty prompt's padded length"
    assert extras["guidance"] == 3.5


def test_flux_descriptor_longer_than_t5_padding_keeps_the_padded_length():
    delta = emotion_delta(FamilyEncoder("flux", t5_min=4), make_direction("sadness", 1.0))
    assert delta.tokens.shape == (1, 4, 4096)


def test_sd3_clip_chunks_and_t5_tokens_are_steered_separately():
    encoder = FamilyEncoder("sd3", t5_min=77)
    delta = emotion_delta(encoder, make_direction("contentment", 1.0))
    assert [s[0] for s in delta.segments] == ["clip", "t5"]
    long_text = " ".join(f"w{i}" for i in range(100))  # CLIP: 2 chunks (154 rows), T5: 100 tokens
    original = encoder(long_text).tokens
    assert original.shape[1] == 154 + 100
    (tokens, _), = steer_conditioning(_conditioning(encoder, long_text), delta)
    added = tokens - original
    clip_delta, t5_delta = delta.tokens[:, :77], delta.tokens[:, 77:]
    torch.testing.assert_close(added[:, :77], clip_delta)
    torch.testing.assert_close(added[:, 77:154], clip_delta)
    torch.testing.assert_close(added[:, 154:231], t5_delta)
    assert added[:, 231:].abs().max() == 0
    assert added[:, :154, 2048:].abs().max() == 0, "CLIP rows stay zero past 2048 (as SD3.5 pads them)"


def test_mismatched_families_name_both():
    delta = emotion_delta(FamilyEncoder("flux"), make_direction("awe", 1.0))
    with pytest.raises(InvalidInputError, match=r"conditioning is from SDXL .* CLIP is Flux"):
        steer_conditioning(_conditioning(FamilyEncoder("sdxl"), "a cat"), delta)
    # same token width, different pooled width: SD3.5's conditioning with Flux's CLIP
    with pytest.raises(InvalidInputError, match=r"conditioning is from SD3.5 .* CLIP is Flux"):
        steer_conditioning(_conditioning(FamilyEncoder("sd3"), "a cat"), delta)
    sd15 = [[torch.zeros(1, 77, 768), {"pooled_output": torch.zeros(1, 768)}]]
    with pytest.raises(InvalidInputError, match=r"positive conditioning is from SD1.5 .* the model is Flux"):
        check_conditioning_for_model("Flux", sd15, "positive")
    check_conditioning_for_model("Flux", _conditioning(FamilyEncoder("flux"), "a cat"), "positive")
    check_conditioning_for_model("SomeNewModel", sd15, "positive")  # unknown models are not second-guessed
