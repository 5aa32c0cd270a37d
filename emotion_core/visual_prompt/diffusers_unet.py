"""Run the same attn2 patches inside a diffusers ``UNet2DConditionModel`` (CLI, training,
benchmarks), so the decoupled attention lives in one place.

Per-call information (``cond_or_uncond``, ``sigmas``) goes into the options dict
that ``patched`` yields; every processor reads it at call time (cross-attention
kwargs would also reach, and upset, the self-attention processors).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, MutableMapping, Sequence

import torch

from .attention import ImagePromptAttention
from .sites import AttnSite

_STAGE_BLOCKS = {"down_blocks": "input", "mid_block": "middle", "up_blocks": "output"}


def _attn2_modules(unet) -> list[tuple[str, torch.nn.Module]]:
    """attn2 modules in ``attn_processors`` order (the order IP-Adapter numbers its layers)."""
    modules = dict(unet.named_modules())
    names = [name[: -len(".processor")] for name in unet.attn_processors if name.endswith("attn2.processor")]
    return [(name, modules[name]) for name in names]


def diffusers_attn2_sites(unet) -> list[AttnSite]:
    """Sites numbered per stage by transformer container (numbers differ from ComfyUI's block ids;
    only the order, stage and widths matter here)."""
    sites, containers = [], {}
    for name, attn in _attn2_modules(unet):
        block = _STAGE_BLOCKS[name.split(".")[0]]
        container, _, rest = name.partition(".transformer_blocks.")
        numbers = containers.setdefault(block, {})
        number = numbers.setdefault(container, len(numbers))
        sites.append(AttnSite(block, number, int(rest.split(".")[0]), attn.to_k.out_features, attn.to_k.in_features))
    return sites


class ImagePromptProcessor:
    """A diffusers attention processor that hands projected q/k/v to an attn2 patch."""

    def __init__(self, patch: ImagePromptAttention, options: MutableMapping):
        self.patch, self.options = patch, options

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None) -> torch.Tensor:
        if attention_mask is not None or encoder_hidden_states is None:
            raise ValueError("visual prompt processors need text context and support no attention mask")
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        out = self.patch(q, k, v, {**self.options, "n_heads": attn.heads})
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


@contextmanager
def patched(unet, patches: Sequence[ImagePromptAttention]) -> Iterator[MutableMapping]:
    """One patch on each attn2 (adapter order) while inside; yields the per-call options dict
    (set ``cond_or_uncond`` and ``sigmas`` before each UNet call)."""
    attn2 = _attn2_modules(unet)
    if len(attn2) != len(patches):
        raise ValueError(f"{len(patches)} patches for {len(attn2)} cross-attention layers")
    for name, module in attn2:
        if module.spatial_norm is not None or module.group_norm is not None or module.residual_connection \
                or module.norm_cross is not None:
            raise ValueError(f"{name}: unsupported attention variant for visual prompts")
    previous = dict(unet.attn_processors)
    options: dict = {}
    processors = dict(previous)
    processors.update({f"{name}.processor": ImagePromptProcessor(patch, options)
                       for (name, _), patch in zip(attn2, patches)})
    unet.set_attn_processor(processors)
    try:
        yield options
    finally:
        unet.set_attn_processor(previous)
