"""UNets in a ModelPatcher for the visual prompt node tests, in either world: with COMFYUI_PATH,
ComfyUI's own ``UNetModel`` (full SD1.5/SDXL configs on the meta device for counting, a tiny
one for forward passes) inside real ``ModelPatcher``s; without it, the stand-in UNet of
``comfy_standins.tiny_models`` (ComfyUI's block numbering and attn2 replace protocol) inside
the stand-in ``ModelPatcher``. Also the injector call and the adapters the tests share."""

import os

import torch
from comfy_standins.tiny_models import (
    FakeClipVision,
    StandInBaseModel,
    init_weights,
    standin_unet,
)
from torch import nn

from emotion_core.testing.adapter_assets import (
    adapter_shapes,
    random_state_dict,
    write_test_adapters,
)

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))

# ComfyUI UNetModel configs (values as ComfyUI's model detection produces them).
SD15 = dict(model_channels=320, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
            transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], context_dim=768, num_heads=8,
            num_head_channels=-1, use_linear_in_transformer=False, adm_in_channels=None)
SDXL = dict(model_channels=320, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
            transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=10,
            transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], context_dim=2048, num_heads=-1,
            num_head_channels=64, use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential")
TINY = dict(model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[1, 1],
            transformer_depth_middle=1, transformer_depth_output=[1, 1, 1, 1], context_dim=768, num_heads=2,
            num_head_channels=-1, use_linear_in_transformer=False, adm_in_channels=None)
TINY_LAYER_DIMS = (32, 64, 64, 64, 32, 32, 64)  # adapter order: input, output, middle
COMMON = dict(in_channels=4, out_channels=4, image_size=32, use_spatial_transformer=True, legacy=False,
              use_checkpoint=False, use_temporal_attention=False, use_temporal_resblock=False)
CPU = torch.device("cpu")
IMAGE = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(3))
TEST_ADAPTERS = {"adapter_sd15": "ipadapter/test_ip_adapter_sd15.safetensors",
                 "adapter_sd15_plus": "ipadapter/test_ip_adapter_plus_sd15.safetensors"}


def meta_patcher(config):
    """A patcher around a full-size UNet on the meta device (counting only)."""
    from comfy.model_patcher import ModelPatcher

    if not COMFYUI:
        return ModelPatcher(StandInBaseModel(standin_unet(config)), CPU, CPU)
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    holder = nn.Module()
    holder.diffusion_model = UNetModel(**COMMON, **config, device="meta", operations=comfy.ops.disable_weight_init)
    return ModelPatcher(holder, CPU, CPU)


def tiny_model_patcher():
    """A runnable tiny SD1.5-style model (7 attn2 blocks) in a ModelPatcher."""
    from comfy.model_patcher import ModelPatcher

    if not COMFYUI:
        return ModelPatcher(init_weights(StandInBaseModel(standin_unet(TINY, device=CPU))), CPU, CPU)
    import comfy.supported_models

    model_config = comfy.supported_models.SD15({**COMMON, **TINY})
    model = model_config.get_model({}, device=CPU)
    init_weights(model.diffusion_model)
    return ModelPatcher(model, CPU, CPU)


def tiny_inputs(chunks, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = 2 * chunks
    x = torch.randn(batch, 4, 16, 16, generator=g) if COMFYUI else torch.randn(batch, 10, 64, generator=g)
    return x, torch.randn(batch, 7, 768, generator=g)


def run_model(patcher, x, context, cond_or_uncond, sigma=5.0):
    """One model call as ComfyUI's calc_cond_batch makes it: the patcher's transformer options
    plus the chunk conditions and the sigmas."""
    options = {**patcher.model_options["transformer_options"], "cond_or_uncond": list(cond_or_uncond),
               "sigmas": torch.full((x.shape[0] // len(cond_or_uncond),), sigma)}
    with torch.no_grad():
        return patcher.model.apply_model(x, torch.full((x.shape[0],), sigma), c_crossattn=context,
                                         transformer_options=options)


def adapter_for(dims, variant="base", cross=768, seed=0):
    """Built with the pack's own classes, so its errors are the ones the nodes raise."""
    from emotion_core.visual_prompt import VisualPromptAdapter as PackAdapter

    shapes = adapter_shapes(variant, cross, dims, resampler_dim=128, resampler_heads=2, depth=1)
    return PackAdapter.from_state_dict(random_state_dict(shapes, seed=seed, dtype=torch.float32))


def visual_prompt_node_classes(models_dir) -> dict:
    """The visual prompt nodes by id, with the test adapters written into ``models_dir``
    (the pack must be loaded)."""
    from emotion_director_pack.nodes import visual_prompt

    write_test_adapters(models_dir, TEST_ADAPTERS)
    return {cls.define_schema().node_id: cls for cls in visual_prompt.NODES}


def inject(nodes, model, adapter, **kwargs):
    """The Visual Prompt Injector's patched model (defaults: weight 1 all the way, IMAGE through
    a FakeClipVision)."""
    values = dict(weight=1.0, weight_schedule="uniform", start_percent=0.0, end_percent=1.0, clip_vision=FakeClipVision(),
                  image=IMAGE)
    values.update(kwargs)
    return nodes["VisualPromptInjector"].execute(model=model, adapter=adapter, **values).args[0]


# SDXL's real block layout (input 4, 5, 7, 8; middle; output 0-5; transformer depth 2/10, 70 attn2 blocks,
# 2048-wide context, ADM 2816) at a narrow width: only the widths differ from SDXL.
SDXL_NARROW = {**SDXL, "model_channels": 32, "num_head_channels": 32}


def sdxl_narrow_patcher():
    """A runnable SDXL-layout UNet in a ModelPatcher (ComfyUI's UNetModel with COMFYUI_PATH)."""
    from comfy.model_patcher import ModelPatcher

    holder = nn.Module()
    if not COMFYUI:
        holder = StandInBaseModel(standin_unet(SDXL_NARROW, device=CPU))
    else:
        import comfy.ops
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

        holder.diffusion_model = UNetModel(**COMMON, **SDXL_NARROW, device=CPU,
                                           operations=comfy.ops.disable_weight_init)
    init_weights(holder)
    return ModelPatcher(holder, CPU, CPU)


def run_sdxl(patcher, cond_or_uncond, seed=0, sigma=5.0):
    """One call of the SDXL-layout UNet, as ComfyUI's calc_cond_batch makes it."""
    g = torch.Generator().manual_seed(seed)
    batch = len(cond_or_uncond)
    context = torch.randn(batch, 7, 2048, generator=g)
    options = {**patcher.model_options["transformer_options"], "cond_or_uncond": list(cond_or_uncond),
               "sigmas": torch.full((1,), sigma)}
    with torch.no_grad():
        if not COMFYUI:
            x = torch.randn(batch, 10, 128, generator=g)
            return patcher.model.apply_model(x, torch.full((batch,), sigma), c_crossattn=context,
                                             transformer_options=options)
        x = torch.randn(batch, 4, 8, 8, generator=g)
        return patcher.model.diffusion_model(x, torch.full((batch,), sigma), context=context,
                                             y=torch.randn(batch, 2816, generator=g), transformer_options=options)
