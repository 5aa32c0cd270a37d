"""Named samplers for the standalone path, each built from the model's own scheduler
config (so its noise schedule and prediction type are kept)."""

from __future__ import annotations

from ..errors import InvalidInputError

# name -> diffusers scheduler class name (+ config overrides); "model" keeps the folder's own.
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}
SCHEDULER_NAMES = ("model", *SCHEDULERS)


def use_scheduler(pipe, name: str) -> str:
    """Replace ``pipe.scheduler`` by the named one; returns the class name in use."""
    if name == "model":
        return type(pipe.scheduler).__name__
    if name not in SCHEDULERS:
        raise InvalidInputError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULER_NAMES)}")
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)
    return class_name
