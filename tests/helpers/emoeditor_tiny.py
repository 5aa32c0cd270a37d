"""Tiny random-weight stand-ins for EmoEditor's released files, in upstream's layouts, for
the ``edit --emoeditor`` tests: ``model_ip2p.pt`` (fp16 ``unet.*`` / ``auto_encoder.*``: an
8-channel UNet of 1M parameters and a VAE with SD's 8x downsampling and 32 channels),
``emo_predictor.pt`` (ResNet-18), the emotion encoder (``testing.encoder_assets``), and a
300x260 source image.

The predictor's head is rescaled around the mean logits of a few edits so its top-1 changes
from edit to edit (spread about +-0.6): with random weights the top-1 would never move, and
only the prediction can accept an edit here (a random VAE keeps no scene, so SSIM stays near
0), so a run has both accepted and rejected passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .emoeditor_reference import ReferenceInstructPix2Pix


def tiny_unet_and_vae():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=28, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32),
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=224)
    return unet.eval(), vae.eval()


def _calibrated_predictor(unet, vae, source):
    from emotion_core.critics.resnet_predictor import build_resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        predictor = build_resnet18().eval()
        with torch.no_grad():
            ip2p = ReferenceInstructPix2Pix(unet, vae)
            torch.manual_seed(100)
            edits = torch.cat([ip2p(torch.randn(1, 77, 768) * 0.5, source, source, 2) for _ in range(6)])
            logits = predictor(edits)
            scale = 0.6 / logits.std(dim=0).mean()
            predictor.fc.weight.mul_(scale)
            predictor.fc.bias.copy_(scale * (predictor.fc.bias - logits.mean(dim=0)))
    return predictor


def write_tiny_emoeditor_files(root: Path) -> dict:
    """The files under ``root``: role -> path, and ``"source"``, the image as test.py reads it ([1,3,224,224])."""
    from emotion_core.testing.encoder_assets import write_test_encoder

    rows = np.linspace(0, 1, 260)[:, None, None]
    cols = np.linspace(0, 1, 300)[None, :, None]
    noise = np.random.default_rng(5).random((260, 300, 3))
    pixels = np.concatenate([rows * cols, 1 - rows + 0 * cols, 0.5 + 0 * rows * cols], axis=2) * 0.8 + 0.2 * noise
    Image.fromarray((pixels * 255).astype(np.uint8)).save(root / "source.png")
    with Image.open(root / "source.png") as image:
        resized = np.asarray(image.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
    source = torch.from_numpy(resized).permute(2, 0, 1)[None]

    with torch.random.fork_rng(devices=[]):
        unet, vae = tiny_unet_and_vae()
    state = {f"unet.{k}": v.half() for k, v in unet.state_dict().items()}
    state.update({f"auto_encoder.{k}": v.half() for k, v in vae.state_dict().items()})
    torch.save(state, root / "model_ip2p.pt")
    torch.save(_calibrated_predictor(unet, vae, source).state_dict(), root / "emo_predictor.pt")
    encoder = write_test_encoder(root, {"emotion_encoder": "model_emoenc.safetensors"})["emotion_encoder"]
    return {"ip2p": root / "model_ip2p.pt", "predictor": root / "emo_predictor.pt", "encoder": encoder,
            "image": root / "source.png", "source": source}
