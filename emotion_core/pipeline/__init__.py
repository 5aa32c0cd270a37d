"""The standalone diffusers path: SD1.5-family models sampled with this project's
guidance and visual prompts, for the CLI (``generate``, ``edit``), training and tests.

Stable interface (other features call these; keep the names):

- ``load_pipeline(path, device="cpu", dtype=torch.float32)`` -> diffusers
  ``StableDiffusionPipeline`` from a diffusers folder or an original-layout
  SD1.5 ``.safetensors`` checkpoint, offline (``loading``, ``single_file``).
- ``encode_prompts(pipe, prompts) -> list[Tensor]``: one ``[1, 77, D]`` text
  embedding per prompt ("" = unconditional).
- ``sample(pipe, branch_embeds, guidance, *, seed, steps, width, height, batch=1,
  init_image=None, denoise=1.0, patches=None, condition_indices=None,
  callback=None, progress=True, patch_options=None, init_latents=None)
  -> SampleResult(images, latents, seeds, steps_run)``:
  all branches in ONE batched UNet call per step; ``guidance(outputs, step) -> output``
  combines the per-branch outputs (``step`` is a ``StepInfo``: index, total,
  timestep, sigma, progress). Branch ``i`` has condition index ``condition_indices[i]``
  (default ``i``: 0 = positive, 1 = negative/unconditional as in ComfyUI), which
  picks its visual prompt tokens when ``patches`` are given (``patch_options``
  adds per-call options, e.g. the guider roles of ``visual_prompt.GUIDER_ROLES_OPTION``). ``images`` is
  IMAGE ``[B,H,W,3]`` float32 in 0..1; image ``k`` uses seed ``seed + k``.
  img2img: ``init_image`` (IMAGE), or ``init_latents`` from ``encode_image`` to
  encode a source once across many calls; ``int(steps * denoise)`` steps run.
- ``cfg_guidance(scale)``: the default guidance for branches ``[cond, uncond]``;
  ``Guidance``, ``StepInfo`` and ``cfg_guidance`` are re-exported from ``emotion_core.guidance``.
- ``encode_image(pipe, IMAGE)`` / ``decode_latents(pipe, latents)``: VAE helpers
  (scaled latents, diffusers' convention).
- ``use_scheduler(pipe, name)`` with ``SCHEDULER_NAMES``.
- Visual prompts (``visual``): ``load_image_encoder(dir)``,
  ``visual_prompts_from_images(adapter, encoder, [(IMAGE, weight), ...])``,
  ``visual_prompt_patches(pipe.unet, adapter, prompts, schedule, sigma_range,
  condition_roles)`` -> ``patches`` for ``sample``.

What the CLI builds on these, one module each: ``branches`` (the prompt, negative and
negative-visual branches with their guidance), ``prompts.steer_prompt`` (the Emotion
Conditioning formula on the pipeline's text embeddings), ``sizes`` (run sizes and init
images), ``visual_files`` (visual prompts from image files) and ``critic_loop`` (the Emotion
Critic Loop with one batched ``sample`` per pass, or EmoEditor's InstructPix2Pix pass).
EmoEditor (``edit --emoeditor``): ``instruct_pix2pix`` (its pass, as its ip2p.py runs it) and
``instruct_pix2pix_files`` (its UNet and VAE from the released or converted files).

Heavy imports (diffusers, transformers) happen inside functions, so importing
this package stays cheap.
"""

from ..guidance import Guidance, StepInfo, cfg_guidance
from .latents import decode_latents, encode_image
from .loading import load_pipeline
from .prompts import encode_prompts
from .sampling import SampleResult, sample
from .schedulers import SCHEDULER_NAMES, use_scheduler

__all__ = [
    "Guidance", "SCHEDULER_NAMES", "SampleResult", "StepInfo", "cfg_guidance", "decode_latents", "encode_image",
    "encode_prompts", "load_pipeline", "sample", "use_scheduler",
]
