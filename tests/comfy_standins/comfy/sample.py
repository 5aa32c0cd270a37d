"""Stand-in for ``comfy.sample`` with the real signatures: seeded noise, and a plain Euler
sampler over a linear sigma schedule that calls ``model.model.apply_model(x, sigma,
c_crossattn=...)`` (CFG when cfg != 1; KSampler's ``denoise`` and start/last step rules)."""

import torch


def prepare_noise(latent_image, seed, noise_inds=None):
    generator = torch.manual_seed(seed)
    if noise_inds is not None:
        raise NotImplementedError("the stand-in does not draw batch-indexed noise")
    return torch.randn(latent_image.size(), dtype=latent_image.dtype, generator=generator, device="cpu")


def fix_empty_latent_channels(model, latent_image):
    return latent_image


def _sigmas(steps, denoise):
    total = steps if denoise >= 0.9999 else int(steps / denoise)
    return torch.linspace(1.0, 0.0, total + 1)[-(steps + 1):]


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0,
           disable_noise=False, start_step=None, last_step=None, force_full_denoise=False, noise_mask=None,
           sigmas=None, callback=None, disable_pbar=False, seed=None):
    sigmas = _sigmas(steps, denoise) if sigmas is None else sigmas
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1]
    if start_step is not None:
        sigmas = sigmas[start_step:]
    x = latent_image + (0 if disable_noise else noise * sigmas[0])
    apply = model.model.apply_model
    for i in range(len(sigmas) - 1):
        denoised = apply(x, sigmas[i], c_crossattn=positive[0][0])
        if cfg != 1.0:
            uncond = apply(x, sigmas[i], c_crossattn=negative[0][0])
            denoised = uncond + cfg * (denoised - uncond)
        if callback is not None:
            callback(i, denoised, x, len(sigmas) - 1)
        x = denoised + (x - denoised) * (sigmas[i + 1] / sigmas[i])
    if noise_mask is not None:
        x = x * noise_mask + latent_image * (1 - noise_mask)
    return x
