"""One injector's shared state: the projected image keys/values of every layer and
role, the per-layer weights, the sigma window and the condition -> role table.

Image keys/values depend only on the image tokens, never on the latent, so they
are projected once here instead of in every attention call of every step.
They live in an ``nn.Module`` of frozen parameters that a host (ComfyUI's memory
manager) can load to the GPU with the UNet and free with it; the adapter's own
K/V weights (hundreds of MB for SDXL) never leave the CPU.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import InvalidInputError
from .adapter import VisualPromptAdapter
from .prompt import NEGATIVE, NEGATIVE_VISUAL, POSITIVE, VisualPrompt
from .sites import AttnSite

log = logging.getLogger(__name__)

# Guider condition index (``cond_or_uncond``) -> token role. 0 is the positive
# conditioning, 1 the negative/unconditional one. A guider with more branches
# (e.g. three-branch DPO guidance) passes its own table with extra roles that
# its VisualPrompt carries. Unlisted indices get FALLBACK_ROLE: anything that is
# not the positive prompt sees the "no image" tokens, as in IP-Adapter training.
DEFAULT_CONDITION_ROLES: Mapping[int, str] = {0: POSITIVE, 1: NEGATIVE}
FALLBACK_ROLE = NEGATIVE
# A guider whose extra conditions have a meaning of their own declares them in
# ``transformer_options[GUIDER_ROLES_OPTION]`` as {condition index: role}; an
# injection's own table still wins for the indices it lists. The three-branch DPO
# guider declares {2: NEGATIVE_VISUAL}. An injection without tokens for a declared
# role uses ROLE_FALLBACKS: the negative visual branch has the positive text, so an
# injector that carries no negative visual prompt (e.g. a style reference stacked
# before the DPO sampler) treats it as the positive branch and the guidance
# difference isolates the DPO visual prompts.
GUIDER_ROLES_OPTION = "visual_prompt_condition_roles"
ROLE_FALLBACKS: Mapping[str, str] = {NEGATIVE_VISUAL: POSITIVE}
_CASTABLE = (torch.float32, torch.float16, torch.bfloat16)


class ProjectedPrompt(nn.Module):
    """Frozen image keys/values ``[T, inner]`` per (role, layer)."""

    def __init__(self, kv: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]]):
        super().__init__()
        self.roles = tuple(kv)
        self.layers = len(next(iter(kv.values())))
        self.kv = nn.ParameterDict()
        for role, layers in kv.items():
            for i, (k, v) in enumerate(layers):
                self.kv[f"{role}_{i}_k"] = nn.Parameter(k, requires_grad=False)
                self.kv[f"{role}_{i}_v"] = nn.Parameter(v, requires_grad=False)

    @classmethod
    def from_prompt(cls, adapter: VisualPromptAdapter, prompt: VisualPrompt) -> "ProjectedPrompt":
        prompt.check_adapter(adapter.layout)
        return cls({role: adapter.layer_kv(tokens) for role, tokens in prompt.tokens.items()})

    def get(self, role: str, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kv[f"{role}_{layer}_k"], self.kv[f"{role}_{layer}_v"]

    def tokens(self, role: str) -> int:
        return self.kv[f"{role}_0_k"].shape[0]


class VisualPromptInjection:
    """State shared by the attn2 patches of one injector."""

    def __init__(self, projected: ProjectedPrompt, layer_weights: Sequence[float],
                 sigma_range: tuple[float, float] | None = None,
                 condition_roles: Mapping[int, str] = DEFAULT_CONDITION_ROLES,
                 managed_models: Sequence = ()):
        if len(layer_weights) != projected.layers:
            raise InvalidInputError(f"{len(layer_weights)} layer weights for {projected.layers} layers")
        unknown = sorted(set(condition_roles.values()) - set(projected.roles))
        if unknown:
            raise InvalidInputError(f"condition roles {unknown} have no tokens (the prompt has {list(projected.roles)})")
        self.projected = projected
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.sigma_range = sigma_range  # (sigma_start, sigma_end): active while end <= sigma <= start
        self.condition_roles = dict(condition_roles)
        self.managed_models = list(managed_models)
        self._gate_cache: tuple[torch.Tensor | None, bool] = (None, True)

    def active(self, extra_options: Mapping) -> bool:
        """Sigma gate; the result is cached per step (every layer sees the same sigmas tensor)."""
        sigmas = extra_options.get("sigmas")
        if self.sigma_range is None or sigmas is None:
            return True
        cached, result = self._gate_cache
        if cached is sigmas:
            return result
        start, end = self.sigma_range
        sigma = float(sigmas.detach().max())
        result = end <= sigma <= start
        self._gate_cache = (sigmas, result)
        return result

    def roles_for(self, cond_or_uncond: Sequence[int], declared: Mapping[int, str] | None = None) -> list[str]:
        """Token role per chunk: this injection's table, else the guider's ``declared`` role
        (or its fallback when this prompt has no such tokens), else FALLBACK_ROLE."""
        roles = []
        for index in cond_or_uncond:
            role = self.condition_roles.get(index)
            if role is None and declared:
                role = declared.get(index)
                if role is not None and role not in self.projected.roles:
                    role = ROLE_FALLBACKS.get(role, FALLBACK_ROLE)
            roles.append(role or FALLBACK_ROLE)
        return roles

    def kv(self, role: str, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values on the query's device and dtype (a no-op once the host loaded them there)."""
        k, v = self.projected.get(role, layer)
        return k.to(like.device, like.dtype), v.to(like.device, like.dtype)

    def to(self, target: torch.device | torch.dtype | str) -> "VisualPromptInjection":
        """ComfyUI calls this with the load/offload device and with the model dtype (also from
        ``ModelPatcher.__del__``, so a call that changes nothing does nothing)."""
        current = next(self.projected.parameters())
        if isinstance(target, torch.dtype):
            # never cast to fp8 storage dtypes: keys/values are compute inputs
            if target in _CASTABLE and target != current.dtype:
                self.projected.to(dtype=target)
        elif torch.device(target) != current.device:
            self.projected.to(device=target)
        return self

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.projected.parameters())


def check_sites(adapter: VisualPromptAdapter, sites: Sequence[AttnSite]) -> None:
    """A clear error when the adapter was made for another model family or UNet depth."""
    layout = adapter.layout
    if not sites:
        raise InvalidInputError("this model has no cross-attention blocks to inject into; visual prompt adapters "
                                "work with SD1.5- and SDXL-style UNet models")
    contexts = sorted({site.context_dim for site in sites})
    if contexts != [layout.cross_dim]:
        model = {768: "SD1.5", 2048: "SDXL"}.get(contexts[0], f"{contexts}-wide text context")
        raise InvalidInputError(
            f"this adapter is for {layout.family.upper()} ({layout.cross_dim}-wide text context) but the model is "
            f"{model} ({contexts} context); load an adapter made for this model"
        )
    if len(sites) != len(layout.layer_dims):
        raise InvalidInputError(
            f"the adapter has {len(layout.layer_dims)} cross-attention layers but the model has {len(sites)}; "
            "it was made for a UNet of another depth"
        )
    for number, (site, dim) in enumerate(zip(sites, layout.layer_dims)):
        if site.inner_dim != dim:
            raise InvalidInputError(
                f"adapter layer {2 * number + 1} is {dim} wide but the model's block {site.key} is "
                f"{site.inner_dim} wide; the adapter was made for another UNet"
            )


def chunk_roles(injection, batch: int, options: Mapping) -> tuple[int, list]:
    """Rows per condition chunk of a ``batch``-row call and each chunk's token role by
    ``injection.roles_for`` (any injection: the sampling one or training's), from the sampler's
    ``cond_or_uncond`` and the guider's declared roles in ``options``."""
    chunks = list(options.get("cond_or_uncond") or [0])
    if batch % len(chunks):
        raise RuntimeError(f"batch of {batch} does not split into {len(chunks)} condition chunks")
    return batch // len(chunks), injection.roles_for(chunks, options.get(GUIDER_ROLES_OPTION))
