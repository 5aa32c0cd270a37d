"""diffusers -> LDM key mapping, checked against diffusers' own LDM -> diffusers conversion
(an independent implementation): every tensor comes back under its own name, unchanged, for
UNets and VAEs of several depths; a key outside the mapping is an error, never passed on."""

import pytest
import torch

from emotion_core.diffusers_to_ldm import unet_to_ldm, vae_to_ldm
from emotion_core.errors import ModelFormatError
from emotion_core.testing.emoeditor_assets import random_state

UNETS = {
    # the test release's shape: two attention levels, one res block each
    "two_attention_levels": dict(block_out_channels=(32, 64), layers_per_block=1,
                                 down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2),
    # SD1.5's shape, narrower: the deepest level has no attention (its upsampler is block part 1), two res blocks
    "sd15_like": dict(block_out_channels=(32, 64, 64), layers_per_block=2,
                      down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")),
}
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64), layers_per_block=2,
           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=32)


def _unet(shape: str, in_channels: int):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        model = UNet2DConditionModel(sample_size=8, in_channels=in_channels, out_channels=4, cross_attention_dim=768,
                                     attention_head_dim=8, norm_num_groups=32, **UNETS[shape])
    return model, random_state(model, torch.Generator().manual_seed(1), torch.float32)


@pytest.mark.parametrize("in_channels", [4, 8])
@pytest.mark.parametrize("shape", sorted(UNETS))
def test_unet_round_trips_through_diffusers_own_conversion(shape, in_channels):
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    model, state = _unet(shape, in_channels)
    ldm = unet_to_ldm(state)
    assert ldm["input_blocks.0.0.weight"].shape[1] == in_channels
    back = convert_ldm_unet_checkpoint({f"model.diffusion_model.{k}": v for k, v in ldm.items()}, dict(model.config))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_unet_upsampler_follows_the_transformer_only_where_there_is_one():
    _, state = _unet("sd15_like", 4)
    ldm = unet_to_ldm(state)
    assert "output_blocks.2.1.conv.weight" in ldm  # level without attention
    assert "output_blocks.5.2.conv.weight" in ldm  # level with attention
    assert "input_blocks.3.0.op.weight" in ldm and "input_blocks.6.0.op.weight" in ldm


@pytest.mark.parametrize("old_attention_names", [False, True])
def test_vae_round_trips_through_diffusers_own_conversion(old_attention_names):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    with torch.device("meta"):
        model = AutoencoderKL(**VAE)
    state = random_state(model, torch.Generator().manual_seed(2), torch.float32)
    given = dict(state)
    if old_attention_names:  # files saved before diffusers 0.14
        renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
        given = {next((k.replace(f".{new}.", f".{old}.") for new, old in renames.items() if f".{new}." in k), k): v
                 for k, v in state.items()}
        assert "encoder.mid_block.attentions.0.query.weight" in given
    ldm = vae_to_ldm(given)
    assert ldm["decoder.mid.attn_1.q.weight"].ndim == 4  # LDM's 1x1 convolutions
    back = convert_ldm_vae_checkpoint({f"first_stage_model.{k}": v for k, v in ldm.items()}, dict(model.config))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k].reshape(state[k].shape), state[k]) for k in state)


@pytest.mark.parametrize("extra, convert", [
    ("add_embedding.linear_1.weight", unet_to_ldm),  # SDXL's added conditioning
    ("down_blocks.0.attentions.0.mystery.weight", unet_to_ldm),
    ("mid_block.resnets.2.conv1.weight", unet_to_ldm),
    ("decoder.down_blocks.0.resnets.0.conv1.weight", vae_to_ldm),
    ("encoder.mid_block.attentions.0.rope.weight", vae_to_ldm),
])
def test_keys_outside_the_mapping_are_errors(extra, convert):
    if convert is unet_to_ldm:
        _, state = _unet("two_attention_levels", 4)
    else:
        from diffusers import AutoencoderKL

        with torch.device("meta"):
            state = dict(AutoencoderKL(**VAE).state_dict())
    with pytest.raises(ModelFormatError, match=f"1 key.s. outside the diffusers SD .* layout: {extra}"):
        convert({**state, extra: torch.zeros(1)})


@pytest.mark.parametrize("convert, missing", [(unet_to_ldm, "not a diffusers UNet"), (vae_to_ldm, "not a diffusers VAE")])
def test_other_layouts_are_refused(convert, missing):
    with pytest.raises(ModelFormatError, match=missing):
        convert({"input_blocks.0.0.weight": torch.zeros(1)})
