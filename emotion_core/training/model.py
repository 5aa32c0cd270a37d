"""What ``accelerate`` prepares as "the model": one module whose forward runs a batch of pairs
through the trained model and the frozen reference and returns their per-sample errors.

Trained: the visual prompt adapter (per-layer image keys/values, plus the projection when
visual prompts arrive as image-encoder features), a UNet LoRA (``lora``), or both. The
reference is the frozen base: the adapter as loaded and the UNet with its LoRA disabled.
The UNet itself, the VAE and the text encoder never train. Keeping both passes inside one
forward lets DDP see the trained parameters and autocast cover both passes.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch

from ..errors import InvalidInputError
from ..visual_prompt import ImagePromptAttention, VisualPromptAdapter, check_sites
from ..visual_prompt.diffusers_unet import diffusers_attn2_sites, patched
from .dpo import per_sample_error
from .injection import TrainableInjection
from .lora import lora_disabled, load_lora_state, lora_state


class DPOModule(torch.nn.Module):
    def __init__(self, unet, adapter: VisualPromptAdapter, scheduler_config, train_adapter: bool,
                 with_projection: bool, lora: bool):
        super().__init__()
        from diffusers import DDPMScheduler

        check_sites(adapter, diffusers_attn2_sites(unet))
        self.unet = unet
        self.train_adapter, self.with_projection, self.lora = train_adapter, with_projection, lora
        self.adapter = copy.deepcopy(adapter).float().requires_grad_(False)
        if train_adapter:
            self.adapter.ip_adapter.requires_grad_(True)
            self.adapter.image_proj.requires_grad_(with_projection)
            self.reference = copy.deepcopy(self.adapter).eval().requires_grad_(False)
        else:
            self.reference = None
        self.injection = TrainableInjection(self.adapter)
        self.patches = [ImagePromptAttention(self.injection, i) for i in range(len(adapter.ip_adapter))]
        self.noise_scheduler = DDPMScheduler.from_config(scheduler_config)
        self.options: dict | None = None

    @property
    def timesteps(self) -> int:
        return self.noise_scheduler.config.num_train_timesteps

    @contextmanager
    def active(self) -> Iterator[None]:
        """The visual prompt patches on the UNet's attn2 layers while inside."""
        with patched(self.unet, self.patches) as options:
            self.options = options
            try:
                yield
            finally:
                self.options = None

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds of the model: only what trains."""
        state = {}
        if self.train_adapter:
            state.update({f"adapter.{k}": v.detach().clone() for k, v in self.adapter.state_dict().items()})
        if self.lora:
            state.update({f"lora.{k}": v for k, v in lora_state(self.unet).items()})
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        adapter = {k[len("adapter."):]: v for k, v in state.items() if k.startswith("adapter.")}
        lora = {k[len("lora."):]: v for k, v in state.items() if k.startswith("lora.")}
        if self.train_adapter:
            self.adapter.load_state_dict(adapter)
        if self.lora:
            load_lora_state(self.unet, lora)

    def _tokens(self, visual: dict, adapter: VisualPromptAdapter) -> torch.Tensor:
        if "tokens" in visual:
            return visual["tokens"]
        embeds = visual["embeds"]
        adapter.check_features(embeds)
        tokens = adapter.image_proj(embeds.float())
        return tokens.reshape(-1, tokens.shape[-1])

    def _errors(self, adapter: VisualPromptAdapter, batch: dict, noisy, timesteps, target, text) -> torch.Tensor:
        self.injection.adapter = adapter
        self.injection.tokens = [self._tokens(v, adapter) for v in (*batch["positive"], *batch["negative"])]
        prediction = self.unet(noisy, timesteps, encoder_hidden_states=text).sample
        return per_sample_error(prediction, target)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample errors ``[B]`` (trained winner, trained loser, reference winner, reference
        loser); each pair's two images are noised with the same noise at the same timestep."""
        if self.options is None:
            raise RuntimeError("DPOModule.forward runs inside active()")
        latents = batch["latents"]
        pairs = latents.shape[0]
        if latents.ndim != 5 or latents.shape[1] != 2:
            raise InvalidInputError(f"expected [pairs, 2, C, H, W] latents, got {tuple(latents.shape)}")
        clean = torch.cat([latents[:, 0], latents[:, 1]])
        noise = batch["noise"].repeat(2, 1, 1, 1)
        timesteps = batch["timestep"].repeat(2)
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        text = batch["text"].repeat(2, 1, 1)
        alphas = self.noise_scheduler.alphas_cumprod.to(latents.device)[timesteps]
        self.options["cond_or_uncond"] = list(range(2 * pairs))
        self.options["sigmas"] = ((1 - alphas) / alphas).sqrt()
        model = self._errors(self.adapter, batch, noisy, timesteps, target, text)
        with torch.no_grad(), (lora_disabled(self.unet) if self.lora else nullcontext()):
            reference = self._errors(self.reference or self.adapter, batch, noisy, timesteps, target, text)
        self.injection.adapter = self.adapter
        return model[:pairs], model[pairs:], reference[:pairs], reference[pairs:]
