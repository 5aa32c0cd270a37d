"""Which model family's text encoders made a conditioning, read from its shapes.

ComfyUI's CONDITIONING carries no family tag, but each family's encoders leave a
signature: the token width and the pooled width.

| family | encoders | tokens | pooled |
|---|---|---|---|
| SD1.5 | CLIP-L | 768 | 768 |
| SD2 | OpenCLIP-H | 1024 | 1024 |
| SDXL | CLIP-L + CLIP-G, concatenated per token | 2048 | 1280 (CLIP-G) |
| SDXL refiner | CLIP-G | 1280 | 1280 |
| Flux | T5-XXL tokens, CLIP-L pooled | 4096 | 768 |
| SD3.5 | CLIP-L + CLIP-G (zero-padded to 4096) then T5-XXL tokens | 4096 | 2048 (L + G) |

The token layout decides how an emotion delta lines up with a conditioning:
CLIP encodes in 77-token chunks (a long prompt is several chunks), T5 encodes the
whole prompt padded to a minimum length, and SD3.5 puts CLIP's chunks first and
T5's tokens after them; its CLIP rows are the ones whose features past 2048 are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import InvalidInputError

CLIP_CHUNK = 77
SD3_CLIP_WIDTH = 2048  # CLIP-L 768 + CLIP-G 1280, zero-padded to 4096 in SD3.5's tokens
CLIP, T5 = "clip", "t5"


@dataclass(frozen=True)
class EncoderFamily:
    name: str  # what users call the model family
    encoders: str
    token_width: int
    pooled_width: Optional[int]
    layout: str  # "clip" (77-token chunks), "t5" (one padded sequence), "clip+t5" (SD3.5)

    def describe(self) -> str:
        pooled = "" if self.pooled_width is None else f", {self.pooled_width}-wide pooled"
        return f"{self.name} ({self.encoders}: {self.token_width}-wide tokens{pooled})"


FAMILIES = (
    EncoderFamily("SD1.5", "CLIP-L", 768, 768, CLIP),
    EncoderFamily("SD2", "OpenCLIP-H", 1024, 1024, CLIP),
    EncoderFamily("SDXL", "CLIP-L + CLIP-G", 2048, 1280, CLIP),
    EncoderFamily("SDXL refiner", "CLIP-G", 1280, 1280, CLIP),
    EncoderFamily("Flux", "T5-XXL + CLIP-L pooled", 4096, 768, T5),
    EncoderFamily("SD3.5", "CLIP-L + CLIP-G + T5-XXL", 4096, 2048, "clip+t5"),
)
# ComfyUI model_config class name -> family name (the model side of a mismatch error).
MODEL_FAMILIES = {"SD15": "SD1.5", "SD20": "SD2", "SD21UnclipH": "SD2", "SDXL": "SDXL", "SDXLRefiner": "SDXL refiner",
                  "Flux": "Flux", "FluxSchnell": "Flux", "SD3": "SD3.5", "SD15_instructpix2pix": "SD1.5",
                  "SDXL_instructpix2pix": "SDXL"}


def identify(tokens: torch.Tensor, pooled: torch.Tensor | None) -> EncoderFamily:
    """The family whose signature ``tokens [B,T,D]`` / ``pooled [B,P]`` has; an unknown one is
    described by its widths (deltas still apply when both sides have the same widths)."""
    width = tokens.shape[-1]
    pooled_width = None if pooled is None else pooled.shape[-1]
    candidates = [f for f in FAMILIES if f.token_width == width]
    for family in candidates:
        if pooled_width is None or family.pooled_width == pooled_width:
            return family
    encoders = f"unknown encoders, {pooled_width}-wide pooled" if pooled_width else "unknown encoders"
    return EncoderFamily(f"a {width}-wide model", encoders, width, pooled_width, CLIP)


def check_same_family(conditioning: EncoderFamily, clip: EncoderFamily) -> None:
    """A conditioning and the CLIP that should have made it must be the same family."""
    same = conditioning.token_width == clip.token_width and (
        conditioning.pooled_width is None or clip.pooled_width is None or conditioning.pooled_width == clip.pooled_width)
    if not same:
        raise InvalidInputError(
            f"the conditioning is from {conditioning.describe()} but the CLIP is {clip.describe()}; "
            "connect the CLIP that encoded this conditioning (the same model family)")


def model_config_name(model) -> str | None:
    """The ComfyUI model config class name of a MODEL (``ModelPatcher``), read duck-typed."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return None if config is None else type(config).__name__


def check_conditioning_for_model(model_config_name: str | None, conditioning: list, name: str) -> None:
    """A conditioning fed to a model of another family fails with both families named (ComfyUI
    would fail deep inside the model with a bare shape error, or silently mis-read it)."""
    model_family = MODEL_FAMILIES.get(model_config_name)
    if model_family is None:
        return
    expected = next(f for f in FAMILIES if f.name == model_family)
    for tokens, extras in conditioning:
        if not isinstance(tokens, torch.Tensor):
            continue
        found = identify(tokens, extras.get("pooled_output"))
        try:
            check_same_family(found, expected)
        except InvalidInputError:
            raise InvalidInputError(
                f"{name} conditioning is from {found.describe()} but the model is {expected.describe()}; "
                f"encode the text with this model's CLIP") from None


def segments(tokens: torch.Tensor, family: EncoderFamily) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` token ranges of one conditioning: CLIP chunks or T5 tokens."""
    length = tokens.shape[1]
    if family.layout == CLIP:
        return [(CLIP, 0, length)]
    if family.layout == T5:
        return [(T5, 0, length)]
    tail_zero = (tokens[..., SD3_CLIP_WIDTH:] == 0).all(dim=-1).all(dim=0)  # [T]: CLIP rows (zero past 2048)
    clip_rows = int(torch.cumprod(tail_zero.to(torch.int64), 0).sum())
    out = [(CLIP, 0, clip_rows)] if clip_rows else []
    if clip_rows < length:
        out.append((T5, clip_rows, length))
    return out
