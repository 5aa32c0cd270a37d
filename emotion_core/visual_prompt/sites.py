"""Where image tokens go: the UNet's cross-attention (attn2) blocks, in the order the
adapter numbers its layers.

IP-Adapter numbers its layers over diffusers' ``attn_processors``: down blocks,
then up blocks, then the middle block. In ComfyUI's UNet the same blocks are
``input_blocks``, ``output_blocks`` and ``middle_block``, and an attn2 replace
patch is keyed ``(block, number, transformer_index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ComfyUI block name -> the coarse UNet stage used by the weight schedules.
STAGES = {"input": "down", "middle": "middle", "output": "up"}


@dataclass(frozen=True)
class AttnSite:
    block: str  # "input" | "middle" | "output"
    number: int  # index of the block in its list; the middle block is 0
    index: int  # transformer index inside the block
    inner_dim: int  # width of the attention keys/values
    context_dim: int  # width of the text context the block reads

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.block, self.number, self.index)

    @property
    def stage(self) -> str:
        return STAGES[self.block]


def comfy_unet_attn2_sites(unet) -> list[AttnSite]:
    """Every attn2 of a ComfyUI ``UNetModel`` (duck-typed: nothing here imports ComfyUI)."""
    groups = [("input", list(unet.input_blocks)), ("output", list(unet.output_blocks))]
    if getattr(unet, "middle_block", None) is not None:
        groups.append(("middle", [unet.middle_block]))
    sites = []
    for block, blocks in groups:
        for number, sequence in enumerate(blocks):
            for layer in sequence:
                for index, transformer in enumerate(getattr(layer, "transformer_blocks", ())):
                    attn2 = getattr(transformer, "attn2", None)
                    if attn2 is not None:
                        sites.append(AttnSite(block, number, index, attn2.to_k.out_features, attn2.to_k.in_features))
    return sites
