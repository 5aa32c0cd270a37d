"""Random-weight models the speed benchmarks run: diffusers UNets at the toy size and at the
real SD1.5 / SDXL shapes, the matching random IP-Adapter-layout adapter and visual prompts.

Shapes, not weights, decide the cost of a step, so random weights give the real figures
without a download. ``--unet`` picks:

- ``toy``: SD1.5 widths (320/640, 768-wide text, 8 heads), 2 levels, 7 cross-attention
  blocks, like the test checkpoint (the default; fast);
- ``sd15-full``: the full SD1.5 UNet config (320/640/1280/1280, 2 layers per block, 16
  cross-attention blocks), 64x64 latent (512 px);
- ``sdxl``: SDXL base's UNet config (320/640/1280, 1/2/10 transformer layers, 2048-wide
  text, 70 cross-attention blocks, added text/time conditioning), 128x128 latent (1024 px),
  about 10 GB in float32.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

UNETS = ("toy", "sd15-full", "sdxl")
FULL_LATENT = {"toy": 32, "sd15-full": 64, "sdxl": 128}


@dataclass(frozen=True)
class BenchModel:
    name: str
    unet: object  # diffusers UNet2DConditionModel, eval, no grad
    family: str  # adapter family: sd15 | sdxl
    text_width: int

    @property
    def description(self) -> str:
        config = self.unet.config
        return (f"diffusers UNet2DConditionModel {self.name}: channels {list(config.block_out_channels)}, "
                f"{self.text_width}-wide text, random weights")


def add_unet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unet", choices=UNETS, default="toy",
                        help="model shape: toy (shallow SD1.5 widths; default), sd15-full (the full SD1.5 UNet, "
                        "use --size 64) or sdxl (SDXL base's UNet, use --size 128; ~10 GB float32)")


def build_unet(name: str, seed: int) -> BenchModel:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    if name == "toy":
        unet = UNet2DConditionModel(
            block_out_channels=(320, 640), layers_per_block=1, cross_attention_dim=768, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), sample_size=64)
        family, width = "sd15", 768
    elif name == "sd15-full":
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8, sample_size=64)  # SD1.5's config
        family, width = "sd15", 768
    elif name == "sdxl":
        unet = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
        family, width = "sdxl", 2048
        unet.register_forward_pre_hook(_sdxl_added_conditions, with_kwargs=True)
    else:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"--unet must be one of {UNETS}, got {name!r}")
    return BenchModel(name, unet.eval().requires_grad_(False), family, width)


def _sdxl_added_conditions(module, args, kwargs):
    """SDXL's pooled text embedding and size/crop ids (zeros: shapes are what cost), batch-sized,
    so callers that pass only latents, timestep and text (the SD1.5 pipeline loop) run it."""
    import torch

    sample = args[0] if args else kwargs["sample"]
    if kwargs.get("added_cond_kwargs") is None:
        batch = sample.shape[0]
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.zeros(batch, 1280, dtype=sample.dtype),
                                       "time_ids": torch.zeros(batch, 6, dtype=sample.dtype)}
    return args, kwargs


def random_adapter(model: BenchModel, seed: int):
    """A random base IP-Adapter (ViT-H 1024 -> 4 tokens) for every attn2 of ``model``; returns
    ``(adapter, state_dict_bytes)``."""
    from ..testing.adapter_assets import adapter_shapes, random_state_dict
    from ..visual_prompt import VisualPromptAdapter
    from ..visual_prompt.diffusers_unet import diffusers_attn2_sites

    sites = diffusers_attn2_sites(model.unet)
    state = random_state_dict(adapter_shapes("base", model.text_width, [s.inner_dim for s in sites]), seed=seed)
    return VisualPromptAdapter.from_state_dict(state), sum(t.numel() * t.element_size() for t in state.values())


def random_visual_prompt(adapter, source: str, seed: int, images: int = 1):
    """A visual prompt from random CLIP image embeds, through the shipped ``build_visual_prompt``."""
    import dataclasses

    import torch

    from ..visual_prompt import build_visual_prompt

    embeds = torch.randn(images, 1024, generator=torch.Generator().manual_seed(seed))
    prompt = build_visual_prompt(adapter, lambda batch: embeds[: batch.shape[0]], torch.zeros(images, 8, 8, 3))
    return dataclasses.replace(prompt, source=source)
