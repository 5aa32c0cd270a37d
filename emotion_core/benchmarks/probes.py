"""What the speed benchmarks observe on a model: forward calls (a forward hook, so the count
is the product's calls, not the benchmark's loop) and seconds per sampling step."""

from __future__ import annotations

from .timing import CLOCKS


class CallCounter:
    """Counts forward calls of a module with a forward hook while active."""

    def __init__(self, module) -> None:
        self.module, self.count = module, 0

    def __enter__(self) -> CallCounter:
        self._hook = self.module.register_forward_hook(self._called)
        return self

    def _called(self, *_) -> None:
        self.count += 1

    def __exit__(self, *exc) -> None:
        self._hook.remove()


class StepClock:
    """Seconds per step of one sampling run: from the first model call to the last step's end,
    on ``clock`` (``timing.CLOCKS``)."""

    def __init__(self, module, clock: str = "cpu") -> None:
        self.module, self.start, self.end = module, None, None
        self.now = CLOCKS[clock]

    def __enter__(self) -> StepClock:
        self._hook = self.module.register_forward_pre_hook(self._first_call)
        return self

    def _first_call(self, *_) -> None:
        if self.start is None:
            self.start = self.now()

    def step_done(self, *_) -> None:
        self.end = self.now()

    def __exit__(self, *exc) -> None:
        self._hook.remove()
        if self.end is None:  # a sampler without a per-step callback: the run's end
            self.end = self.now()


def tiny_vae():
    """A one-block VAE: ``sample`` decodes once at the end, which is not timed."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, layers_per_block=1).eval()


def pipeline_runner(unet, branch_embeds, guidance, patches, size: int, steps: int, seed: int, clock: str,
                    calls: dict, name: str, **sample_options):
    """A variant for ``timing.time_interleaved``: one run of ``pipeline.sampling.sample`` (the CLI's
    sampler) on ``unet``; returns its seconds per step and stores UNet calls per step in ``calls[name]``."""
    from types import SimpleNamespace

    from diffusers import EulerDiscreteScheduler

    from ..pipeline import sampling

    pipe = SimpleNamespace(unet=unet, scheduler=EulerDiscreteScheduler(), vae=tiny_vae(), vae_scale_factor=8)

    def run() -> float:
        with StepClock(unet, clock) as step_clock, CallCounter(unet) as counter:
            result = sampling.sample(pipe, branch_embeds, guidance, seed=seed, steps=steps, width=size * 8,
                                     height=size * 8, patches=patches, callback=step_clock.step_done, progress=False,
                                     **sample_options)
        calls[name] = counter.count / result.steps_run
        return (step_clock.end - step_clock.start) / result.steps_run

    return run
