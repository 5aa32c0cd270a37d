"""Flux IP-Adapters through ComfyUI's DiT block patches, decoupled as the SD injector is.

A ``patches_replace["dit"][("double_block", i)]`` / ``("single_block", i)`` patch gets
the block's inputs and the original block. Each patch here runs the original block
(or the patch registered before it, so injectors stack) and adds the image
attention ``attn(q, K_ip[role], V_ip[role])``, where ``q`` is the block's own
per-head RMS-normalised query before RoPE (as both published processors read it)
and ``role`` is chosen per batch chunk from ``cond_or_uncond``:

- XLabs: ``img += w * attn`` after the double block (its processor adds it there).
- InstantX: ``attn`` is added to the block's attention output before the output
  projection (double blocks: the image tokens; single blocks: every token), through
  ComfyUI's ``optimized_attention_override`` for the duration of this block, so
  the rest of the block is ComfyUI's own code.

Weight 0, or a sigma outside the window, calls the block unchanged. Nothing here
imports ComfyUI: blocks are read by their attribute names in ComfyUI's
``comfy/ldm/flux/layers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .flux_layout import FLUX, XLABS
from .injection import ProjectedPrompt, VisualPromptInjection, chunk_roles
from .prompt import VisualPrompt

OVERRIDE_OPTION = "optimized_attention_override"
DOUBLE, SINGLE = "double_block", "single_block"
_UNET_FAMILIES = {"sd15": "SD1.5", "sdxl": "SDXL"}


@dataclass(frozen=True)
class FluxModelShape:
    double_blocks: int
    single_blocks: int
    hidden: int
    heads: int
    context_dim: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def is_flux_model(diffusion_model) -> bool:
    return hasattr(diffusion_model, "double_blocks") and hasattr(diffusion_model, "single_blocks")


def flux_model_shape(diffusion_model) -> FluxModelShape:
    """Block counts and widths of a ComfyUI ``Flux`` diffusion model (duck-typed)."""
    return FluxModelShape(len(diffusion_model.double_blocks), len(diffusion_model.single_blocks),
                          diffusion_model.hidden_size, diffusion_model.num_heads,
                          diffusion_model.txt_in.in_features)


def model_family_name(diffusion_model) -> str:
    """A model family name for error messages."""
    if is_flux_model(diffusion_model):
        return "Flux (DiT)"
    if hasattr(diffusion_model, "input_blocks"):
        return "an SD1.5/SDXL UNet"
    return type(diffusion_model).__name__


def check_flux_adapter(layout, shape: FluxModelShape) -> list[tuple[str, int]]:
    """Patch keys, in the adapter's layer order; a clear error naming both families on any mismatch."""
    if getattr(layout, "family", None) != FLUX:
        family = _UNET_FAMILIES.get(layout.family, layout.family)
        raise InvalidInputError(
            f"this adapter is for {family} (a UNet IP-Adapter) but the model is Flux (DiT); load a Flux IP-Adapter "
            "in the XLabs or InstantX format"
        )
    if layout.hidden != shape.hidden:
        raise InvalidInputError(f"this {layout.variant} Flux IP-Adapter is for a DiT of width {layout.hidden} but the "
                                f"model's blocks are {shape.hidden} wide; it was made for another Flux model")
    doubles = [(DOUBLE, i) for i in range(shape.double_blocks)]
    keys = doubles if layout.variant == XLABS else doubles + [(SINGLE, i) for i in range(shape.single_blocks)]
    if len(keys) != layout.layers:
        where = "double blocks" if layout.variant == XLABS else "double + single blocks"
        raise InvalidInputError(f"this {layout.variant} Flux IP-Adapter has {layout.layers} block layers but the model "
                                f"has {len(keys)} {where}; it was made for a Flux model of another depth")
    return keys


def flux_layer_weights(schedule: str, keys: Sequence[tuple[str, int]], weight: float) -> list[float]:
    """'uniform', two numbers ``double,single``, or one number per adapter layer."""
    from .schedule import _parse_list, check_weight

    weight = check_weight(weight)
    spec = schedule.strip().lower()
    if spec == "uniform":
        return [weight] * len(keys)
    if spec in ("style", "composition"):
        raise InvalidInputError(f"the {spec!r} preset names UNet blocks (IPAdapter_plus's SD1.5/SDXL tables); on Flux "
                                "use 'uniform', 'double,single' multipliers or one number per block")
    values = _parse_list(spec)
    if len(values) == 2:
        return [weight * values[0 if kind == DOUBLE else 1] for kind, _ in keys]
    if len(values) == len(keys):
        return [weight * v for v in values]
    raise InvalidInputError(f"schedule has {len(values)} values; on Flux give 2 (double,single) or one per adapter "
                            f"block ({len(keys)}), or 'uniform'")


def project_flux_prompt(adapter, prompt: VisualPrompt, shape: FluxModelShape) -> ProjectedPrompt:
    prompt.check_adapter(adapter.layout)
    return ProjectedPrompt({role: adapter.layer_kv(tokens, shape.head_dim) for role, tokens in prompt.tokens.items()})


def _modulated(norm, mod, x: torch.Tensor) -> torch.Tensor:
    return norm(x) * (1 + mod.scale) + mod.shift


def block_query(block, kind: str, args: Mapping, heads: int) -> torch.Tensor:
    """The block's normalised query ``[B, heads, L, D]`` before RoPE (image tokens for double
    blocks, every token for single blocks). Only the query rows of the fused projection are computed."""
    if kind == DOUBLE:
        mod, _ = block.img_mod(args["vec"])
        x, linear, norm = _modulated(block.img_norm1, mod, args["img"]), block.img_attn.qkv, block.img_attn.norm
    else:
        mod, _ = block.modulation(args["vec"])
        x, linear, norm = _modulated(block.pre_norm, mod, args["img"]), block.linear1, block.norm
    hidden = x.shape[-1]
    weight = linear.weight[:hidden].to(x.device, x.dtype)
    bias = None if linear.bias is None else linear.bias[:hidden].to(x.device, x.dtype)
    q = F.linear(x, weight, bias).unflatten(-1, (heads, -1)).transpose(1, 2)
    return norm.query_norm(q)


class FluxImagePromptBlock:
    """The DiT replace patch of one double or single block."""

    def __init__(self, injection: VisualPromptInjection, layer: int, block, kind: str, variant: str, heads: int,
                 previous=None):
        self.injection, self.layer, self.block, self.kind = injection, layer, block, kind
        self.variant, self.heads, self.previous = variant, heads, previous

    def __deepcopy__(self, memo) -> "FluxImagePromptBlock":
        return self

    def _run(self, args: Mapping, extra: Mapping) -> dict:
        return self.previous(args, extra) if self.previous is not None else extra["original_block"](args)

    def __call__(self, args: Mapping, extra: Mapping) -> dict:
        options = args.get("transformer_options") or {}
        weight = self.injection.layer_weights[self.layer]
        if weight == 0.0 or not self.injection.active(options):
            return self._run(args, extra)
        q = block_query(self.block, self.kind, args, self.heads)
        image = self.image_attention(q, options) * weight
        if self.variant == XLABS:
            out = dict(self._run(args, extra))
            out["img"] = out["img"] + image.to(out["img"].dtype)
            return out
        previous_override = options.get(OVERRIDE_OPTION)

        def add_image(func, *a, **kw):
            out = previous_override(func, *a, **kw) if previous_override is not None else func(*a, **kw)
            pad = out.shape[1] - image.shape[1]  # double blocks: text tokens come first
            return out + F.pad(image.to(out.dtype), (0, 0, pad, 0))

        return self._run({**args, "transformer_options": {**options, OVERRIDE_OPTION: add_image}}, extra)

    def image_attention(self, q: torch.Tensor, options: Mapping) -> torch.Tensor:
        """``attn(q, K_ip, V_ip)`` with each batch chunk's role -> ``[B, L, hidden]``."""
        size, roles = chunk_roles(self.injection, q.shape[0], options)
        heads = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(0, 1).unsqueeze(0)
        outs = []
        for i, role in enumerate(roles):
            k, v = self.injection.kv(role, self.layer, q)
            outs.append(F.scaled_dot_product_attention(q[i * size:(i + 1) * size], heads(k).expand(size, -1, -1, -1),
                                                       heads(v).expand(size, -1, -1, -1)))
        return torch.cat(outs).transpose(1, 2).flatten(2)

    def to(self, target) -> "FluxImagePromptBlock":
        self.injection.to(target)
        if hasattr(self.previous, "to"):
            self.previous = self.previous.to(target)
        return self

    def models(self) -> list:
        previous = self.previous.models() if hasattr(self.previous, "models") else []
        return [*self.injection.managed_models, *previous]


def make_flux_patches(injection: VisualPromptInjection, diffusion_model, keys: Sequence[tuple[str, int]],
                      variant: str, existing: Mapping) -> list[tuple[tuple[str, int], FluxImagePromptBlock]]:
    """``(key, patch)`` per adapter layer, each wrapping the ``dit`` patch already registered at that key."""
    heads = diffusion_model.num_heads
    blocks = {DOUBLE: diffusion_model.double_blocks, SINGLE: diffusion_model.single_blocks}
    return [(key, FluxImagePromptBlock(injection, layer, blocks[key[0]][key[1]], key[0], variant, heads,
                                       existing.get(key)))
            for layer, key in enumerate(keys)]
