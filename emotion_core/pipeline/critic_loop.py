"""The Emotion Critic Loop (Iterative Emotion Inference, ``emotion_core.critic_loop``) on
diffusers components. ``run_pipeline_loop``: one batched ``sample`` per pass, the prompt
re-steered along the re-estimated direction every pass (``generate --critic-loop``,
``edit``). ``run_instruct_pix2pix_loop``: EmoEditor, one InstructPix2Pix pass per pass with
the emotion encoder's tokens for the pass's direction (``edit --emoeditor``)."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from ..critic_loop import Candidates, LoopResult, LoopSettings, run_critic_loop
from ..critic_loop.settings import DENOISE_QUANTUM
from ..direction import EmotionDirection
from ..taxonomy import NUM_EMOTIONS
from .branches import PromptBranches
from .instruct_pix2pix import ImageGuidance, InstructPix2Pix, edit_pass
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


def run_instruct_pix2pix_loop(model: InstructPix2Pix, encoder, critic, target: EmotionDirection,
                              settings: LoopSettings, source, *, steps: int,
                              image_guidance: tuple[float, float] | None = None) -> LoopResult:
    """Run the loop with ``model`` (``settings``: EmoEditor's preset, one candidate per pass).

    A pass edits the image the loop hands it (the source, or the last kept candidate) at the
    drawn noise level T = denoise * 1000, conditioned on ``source`` (IMAGE), with
    ``encoder``'s tokens for the pass's direction; its randomness continues from the loop's
    generator, which drew T (test.py's single seeded RNG). ``image_guidance``: ``(text_scale,
    image_scale)`` for diffusers' InstructPix2Pix guidance instead of none."""
    if settings.candidates != 1:
        raise ValueError("an InstructPix2Pix pass makes one candidate")
    guidance = None
    if image_guidance is not None:
        weight = encoder.fc[0].weight
        with torch.no_grad():
            uncond = encoder(torch.zeros(1, NUM_EMOTIONS, device=weight.device, dtype=weight.dtype))
        guidance = ImageGuidance(*image_guidance, uncond)
    bar = tqdm(desc="passes", file=sys.stderr, leave=False)

    def generate(seeds, denoise, state):
        image = edit_pass(model, state.conditioning, state.base_image, source, noise_level=round(denoise * DENOISE_QUANTUM),
                          steps=steps, generator=state.generator, guidance=guidance)
        bar.update(1)
        return Candidates(image)

    try:
        return run_critic_loop(generate, critic.predict, target, settings, source=source,
                               update_conditioning=encoder.encode)
    finally:
        bar.close()
