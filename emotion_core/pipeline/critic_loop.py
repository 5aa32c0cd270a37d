"""The Emotion Critic Loop (Iterative Emotion Inference, ``emotion_core.critic_loop``) on the
diffusers pipeline: one batched ``sample`` per pass, the prompt re-steered along the
re-estimated direction every pass. ``generate --critic-loop`` and ``edit`` run it."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..critic_loop import Candidates, LoopResult, LoopSettings, run_critic_loop
from ..direction import EmotionDirection
from .branches import PromptBranches
from .latents import encode_image
from .prompts import steer_prompt
from .sampling import sample


def run_pipeline_loop(pipe, critic, target: EmotionDirection, settings: LoopSettings, branches: PromptBranches, *,
                      steps: int, width: int, height: int, source=None, patches=None) -> LoopResult:
    """Run the loop on ``pipe`` and return its result.

    Each pass steers ``branches.positive`` along the re-estimated direction (the Emotion
    Conditioning formula) and samples ``branches`` with their guidance and ``patches``.
    The image a pass starts from: the last accepted candidate's latents when chaining, else
    ``source`` (IMAGE, VAE-encoded once), both re-noised to the drawn denoise; with neither
    (text-to-image, until a candidate is accepted) a pass is plain text-to-image at denoise 1
    and only the emotion is judged. ``steps`` is the full schedule: a pass at denoise d runs
    int(steps * d) steps."""
    source_latents = None if source is None else encode_image(pipe, source)
    options = branches.sample_options()
    bar = tqdm(total=settings.max_iterations, desc="passes", file=sys.stderr, leave=False)

    def generate(seeds, denoise, state):
        init = source_latents if state.base_latent is None else state.base_latent
        used = 1.0 if init is None else denoise
        result = sample(pipe, branches.embeddings(state.conditioning), branches.guidance, seed=seeds[0], steps=steps,
                        width=width, height=height, batch=len(seeds), denoise=used, progress=False,
                        init_latents=init, patches=patches, **options)
        bar.update(1)
        return Candidates(result.images, result.latents, denoise=used)

    try:
        return run_critic_loop(generate, critic.predict, target, settings, source=source,
                               update_conditioning=lambda direction: steer_prompt(pipe, branches.positive, direction))
    finally:
        bar.close()
