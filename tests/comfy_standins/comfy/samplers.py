"""Stand-in for ``comfy.samplers`` with the real signatures (ComfyUI 0.3.64): the sampler and
scheduler name lists node schemas offer (a subset of the real ones), ``CFGGuider`` and
``calc_cond_batch`` for guiders built on them, and ``sampler_object`` to run a guider.

Reduced to what the tiny test models need: a condition is its cross-attention tensor (no
areas, masks, hooks, ControlNets or model wrappers), every sampler name runs plain Euler
and latents are not shifted in or out of the model's latent space."""

import math

import torch


class KSampler:
    SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
    SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc"]


def calc_cond_batch(model, conds, x_in, timestep, model_options):
    """The present conditions in one batched ``model.apply_model`` call, the chunks' condition
    indices in ``cond_or_uncond`` and the sigmas in the transformer options; an absent (None)
    condition gives zeros, as ComfyUI's does."""
    out = [torch.zeros_like(x_in) for _ in conds]
    present = [i for i, cond in enumerate(conds) if cond is not None]
    if not present:
        return out
    contexts = [conds[i][0]["cross_attn"] for i in present]
    context = torch.cat([c.repeat(x_in.shape[0] // c.shape[0], 1, 1) for c in contexts])
    transformer_options = {**model_options.get("transformer_options", {}), "cond_or_uncond": present,
                           "sigmas": timestep}
    output = model.apply_model(torch.cat([x_in] * len(present)), torch.cat([timestep] * len(present)),
                               c_crossattn=context, transformer_options=transformer_options)
    for i, chunk in zip(present, output.chunk(len(present))):
        out[i] = chunk
    return out


def _convert_cond(cond):
    """``comfy.sampler_helpers.convert_cond``: CONDITIONING ``[[tensor, extras], ...]`` -> dicts."""
    return [{**extras, "cross_attn": tensor} for tensor, extras in cond]


class CFGGuider:
    def __init__(self, model_patcher):
        self.model_patcher = model_patcher
        self.model_options = model_patcher.model_options
        self.original_conds = {}
        self.cfg = 1.0

    def set_conds(self, positive, negative):
        self.inner_set_conds({"positive": positive, "negative": negative})

    def set_cfg(self, cfg):
        self.cfg = cfg

    def inner_set_conds(self, conds):
        for k in conds:
            self.original_conds[k] = _convert_cond(conds[k])

    def __call__(self, *args, **kwargs):
        return self.outer_predict_noise(*args, **kwargs)

    def outer_predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - ComfyUI's signature
        return self.predict_noise(x, timestep, model_options, seed)

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - ComfyUI's signature
        uncond = self.conds.get("negative")
        if math.isclose(self.cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False):
            uncond = None
        cond_pred, uncond_pred = calc_cond_batch(self.inner_model, [self.conds.get("positive"), uncond], x, timestep,
                                                 model_options)
        return uncond_pred + (cond_pred - uncond_pred) * self.cfg

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        """The conditions are copied for the run, ``inner_model`` and ``conds`` exist only during
        it, and the sampler sees ``sample_sigmas`` in the transformer options, as in ComfyUI."""
        if sigmas.shape[-1] == 0:
            return latent_image
        self.conds = {k: [dict(c) for c in conds] for k, conds in self.original_conds.items()}
        self.inner_model = self.model_patcher.model
        transformer_options = {**self.model_options.get("transformer_options", {}), "sample_sigmas": sigmas}
        extra_args = {"model_options": {**self.model_options, "transformer_options": transformer_options},
                      "seed": seed}
        try:
            return sampler.sample(self, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        finally:
            del self.inner_model, self.conds


def _sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """``k_diffusion.sampling.sample_euler`` without churn."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


class KSAMPLER:
    def __init__(self, sampler_function, extra_options={}, inpaint_options={}):  # noqa: B006 - ComfyUI's signature
        self.sampler_function = sampler_function
        self.extra_options = extra_options
        self.inpaint_options = inpaint_options

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        if denoise_mask is not None:
            raise NotImplementedError("the stand-in does not sample with a denoise mask")

        def model_k(x, sigma, denoise_mask=None, model_options={}, seed=None):  # noqa: B006 - KSamplerX0Inpaint's
            return model_wrap(x, sigma, model_options=model_options, seed=seed)

        total_steps = len(sigmas) - 1
        k_callback = None if callback is None else lambda s: callback(s["i"], s["denoised"], s["x"], total_steps)
        x = noise * sigmas[0] + (0 if latent_image is None else latent_image)  # an ε model's noise_scaling
        return self.sampler_function(model_k, x, sigmas, extra_args={**extra_args, "denoise_mask": denoise_mask},
                                     callback=k_callback, disable=disable_pbar, **self.extra_options)


def sampler_object(name):
    if name not in KSampler.SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}")
    return KSAMPLER(_sample_euler)
