"""A small reference implementation of EmoEditor's released procedure, written step by step
from reading its public code (test.py's loop, ip2p.py's ``InstructPix2Pix.forward``,
utils.py's ``cal_ssim``), not copied from it, for the parity tests. It keeps upstream's
structure on purpose: one global torch RNG seeded once, the scheduler's config attribute
overwritten with T as ip2p.py does, plain lists for the kept images and the two best lists.
The one change: the modules run in whatever dtype they are given (upstream halves them on
a GPU; the tests run float32 on the CPU), inputs cast to it where upstream casts to half.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

CLASSES = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]  # alphabetical
POSITIVE = {"amusement", "awe", "contentment", "excitement"}
LATENT_SCALE = 0.18215


def reference_cal_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """utils.cal_ssim on two IMAGE tensors ``[1,H,W,3]`` as test.py feeds it: each channel to
    8 bits by ``mul(255).clamp(0, 255).byte()`` (truncation), OpenCV's 8-bit RGB2GRAY (15-bit
    fixed point), scikit-image's ``structural_similarity(win_size=51)`` defaults (uniform
    filter, sample covariance, data range 255 for uint8, mean over the windows inside the
    image). tests/test_ssim.py holds these parts to cv2 and skimage where they are installed."""
    from scipy.ndimage import uniform_filter

    def gray(x):
        rgb = x[0].mul(255).clamp(0, 255).byte().numpy().astype(np.int64)
        return ((rgb[..., 0] * 9798 + rgb[..., 1] * 19235 + rgb[..., 2] * 3735 + 16384) >> 15).astype(np.float64)

    x, y, win = gray(a), gray(b), 51
    norm = win * win / (win * win - 1)
    mean = lambda t: uniform_filter(t, size=win)  # noqa: E731
    mx, my = mean(x), mean(y)
    vx, vy, cxy = norm * (mean(x * x) - mx**2), norm * (mean(y * y) - my**2), norm * (mean(x * y) - mx * my)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


class ReferenceInstructPix2Pix:
    """ip2p.py's module around a given UNet and VAE (upstream builds them from the hub):
    DDIM with CompVis SD v1-4's scheduler config, T drawn per call, no guidance."""

    def __init__(self, unet, vae):
        from diffusers import DDIMScheduler

        self.unet, self.auto_encoder = unet, vae
        self.num_train_timesteps = 1000
        self.scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                       steps_offset=1)
        self.scheduler.set_timesteps(100)
        self.noise_levels: list[int] = []

    def latents_of(self, images):  # posterior sample, scaled
        return self.auto_encoder.encode(2 * images - 1).latent_dist.sample() * LATENT_SCALE

    def condition_of(self, images):  # posterior mode, unscaled
        return self.auto_encoder.encode(2 * images - 1).latent_dist.mode()

    @torch.no_grad()
    def __call__(self, tokens, image, image_cond, diffusion_steps, lower=0.70, upper=0.98):
        low, high = int(self.num_train_timesteps * lower), int(self.num_train_timesteps * upper)
        noise_level = torch.randint(low, high + 1, [1], dtype=torch.long)
        self.noise_levels.append(int(noise_level))
        self.scheduler.config.num_train_timesteps = noise_level.item()  # what ip2p.py does (an attribute)
        self.scheduler.set_timesteps(diffusion_steps)
        latents = self.latents_of(image)
        condition = self.condition_of(image_cond)
        latents = self.scheduler.add_noise(latents, torch.randn_like(latents), self.scheduler.timesteps[0])
        for t in self.scheduler.timesteps:
            noise = self.unet(torch.cat([latents, condition], dim=1), t, encoder_hidden_states=tokens).sample
            latents = self.scheduler.step(noise, t, latents).prev_sample
        return (self.auto_encoder.decode(latents / LATENT_SCALE).sample / 2 + 0.5).clamp(0, 1)


@dataclass
class ReferenceRun:
    accepted: list[bool] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    ssims: list[float] = field(default_factory=list)
    edits: list[torch.Tensor] = field(default_factory=list)  # every pass's image [3,224,224]
    kept: int = 0  # images kept, the source included
    final: torch.Tensor | None = None
    final_is_source: bool = False


def _nhwc(image: torch.Tensor) -> torch.Tensor:
    return image.permute(1, 2, 0)[None].float()


@torch.no_grad()
def reference_test_py(ip2p: ReferenceInstructPix2Pix, encoder, predictor, source: torch.Tensor, target: str,
                      seed: int, steps: int, num_loop: int, max_passes: int = 1000) -> ReferenceRun:
    """test.py's loop for a source ``[1,3,224,224]`` (already resized, 0..1). ``max_passes``
    only guards the test itself against test.py's endless loop."""
    dtype = next(ip2p.unet.parameters()).dtype
    run = ReferenceRun()
    target_label = CLASSES.index(target)
    source_softmax = torch.softmax(predictor(source.float())[0], dim=0)
    onehot = torch.zeros(8)
    onehot[target_label] = 1.0
    kept = [source[0]]
    best_target, best_target_list, best_same, best_same_list = 0.0, [], 0.0, []
    torch.manual_seed(seed)

    def one_pass(direction, image):
        nonlocal best_target, best_same
        edited = ip2p(encoder(direction).to(dtype), image.to(dtype), source.to(dtype), steps)
        logits = predictor(edited.float())
        label = int(logits.argmax(dim=1)[0])
        softmax = torch.softmax(logits[0], dim=0)
        ssim = reference_cal_ssim(_nhwc(source[0]), _nhwc(edited[0]))
        run.labels.append(CLASSES[label])
        run.ssims.append(ssim)
        run.edits.append(edited[0].float())
        accepted = (0.5 < ssim < 0.8) or label == target_label
        run.accepted.append(accepted)
        if accepted:
            same_valence = (CLASSES[label] in POSITIVE) == (target in POSITIVE)
            if same_valence and softmax[label] > best_same:
                best_same = softmax[label].item()
                best_same_list.append(edited[0])
            if softmax[target_label] > best_target:
                best_target = softmax[target_label].item()
                best_target_list.append(edited[0])
            kept.append(edited[0])
            return edited, label, softmax
        return kept[-1][None], label, softmax

    image, label, first_softmax = one_pass(onehot - source_softmax, source)
    while best_target < 0.6 and len(kept) < num_loop and len(run.accepted) < max_passes:
        image, label, _ = one_pass(onehot - first_softmax, image)  # test.py keeps the first pass's softmax
    final = kept[-1]
    if label != target_label:
        if best_target > 0.6:
            final = best_target_list[-1]
        elif best_same != 0:
            final = best_same_list[-1]
        elif best_target != 0:
            final = best_target_list[-1]
    run.kept, run.final = len(kept), final.float()
    run.final_is_source = final is kept[0]
    return run
