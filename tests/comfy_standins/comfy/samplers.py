"""Stand-in for ``comfy.samplers``: the sampler and scheduler name lists node schemas offer
(a subset of the real ones; sampling itself needs a real ComfyUI)."""


class KSampler:
    SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
    SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc"]
