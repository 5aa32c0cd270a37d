"""UNet LoRA for DPO training through ``peft``, and its export in the key layout ComfyUI's
LoraLoader / LoraLoaderModelOnly read.

The LoRA goes on every attention projection (``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of
attn1 and attn2), as Diffusion-DPO's SD1.5 LoRA runs do. peft starts ``lora_B`` at zero, so
the trained model equals the frozen base before the first step; the reference is the
same UNet with the LoRA disabled.

Export layout (kohya): ``lora_unet_<diffusers module path, dots as underscores>`` with
``.lora_down.weight`` (peft's ``lora_A``), ``.lora_up.weight`` (``lora_B``) and ``.alpha``.
ComfyUI's ``model_lora_keys_unet`` maps exactly these names for SD1.x UNets (it builds
them from ``comfy.utils.unet_to_diffusers``) and scales by alpha / rank, which is peft's
``lora_alpha / r``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import InvalidInputError

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER_NAME = "default"
PREFIX = "lora_unet_"


def require_peft():
    """The peft module, or an error naming the extra that installs it."""
    try:
        import peft
    except ImportError as exc:
        raise InvalidInputError("--train unet-lora/both trains a UNet LoRA through peft, which is not installed: "
                                "pip install 'emotion-director[train]' (or pip install peft)") from exc
    return peft


def add_unet_lora(unet, rank: int, alpha: float, seed: int) -> list[torch.nn.Parameter]:
    """Put a fresh LoRA (B = 0, A drawn from ``seed``) on the UNet's attention projections;
    returns its parameters (float32, trainable). Undo with ``remove_unet_lora``."""
    peft = require_peft()
    if rank < 1 or not alpha > 0:
        raise InvalidInputError(f"LoRA rank must be >= 1 and alpha > 0, got rank {rank}, alpha {alpha}")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(TARGET_MODULES), init_lora_weights=True)
    unet.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # peft draws A from the global generator
        torch.manual_seed(seed)
        unet.add_adapter(config, adapter_name=ADAPTER_NAME)
    params = [p for name, p in unet.named_parameters() if ".lora_" in name]
    for param in params:
        param.data = param.data.float()
        param.requires_grad_(True)
    return params


def remove_unet_lora(unet) -> None:
    """Unwrap the LoRA layers: the UNet is again the module it was before ``add_unet_lora``."""
    unet.unload_lora()


@contextmanager
def lora_disabled(unet) -> Iterator[None]:
    """The frozen base UNet inside (the DPO reference)."""
    unet.disable_adapters()
    try:
        yield
    finally:
        unet.enable_adapters()


def lora_state(unet) -> dict[str, torch.Tensor]:
    """The LoRA parameters by their module names (for checkpoints)."""
    return {name: p.detach().clone() for name, p in unet.named_parameters() if ".lora_" in name}


def load_lora_state(unet, state: dict[str, torch.Tensor]) -> None:
    own = dict(unet.named_parameters())
    names = {name for name in own if ".lora_" in name}
    if set(state) != names:
        raise InvalidInputError(f"checkpoint LoRA has {len(state)} tensors, this UNet's LoRA {len(names)}; resume "
                                "with the same --base and --lora-rank")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)


def _lora_layers(unet):
    from peft.tuners.lora import LoraLayer

    for name, module in unet.named_modules():
        if isinstance(module, LoraLayer) and ADAPTER_NAME in module.lora_A:
            yield name, module


def comfyui_lora_state(unet, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The trained LoRA with kohya ``lora_unet_*`` keys (``lora_down``/``lora_up``/``alpha``)."""
    out = {}
    for name, module in _lora_layers(unet):
        key = PREFIX + name.replace(".", "_")
        down = module.lora_A[ADAPTER_NAME].weight
        up = module.lora_B[ADAPTER_NAME].weight
        rank = down.shape[0]
        alpha = module.scaling[ADAPTER_NAME] * rank  # peft: scaling = lora_alpha / r
        out[f"{key}.lora_down.weight"] = down.detach().to("cpu", dtype).contiguous()
        out[f"{key}.lora_up.weight"] = up.detach().to("cpu", dtype).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    if not out:
        raise InvalidInputError("the UNet has no LoRA layers to export")
    return out


def lora_metadata(rank: int, alpha: float) -> dict[str, str]:
    """kohya-style metadata, which LoRA browsers show; ComfyUI reads only the tensors."""
    return {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(alpha),
            "ss_training_comment": "negative-visual diffusion-dpo (emotion-director train-dpo)",
            "target_modules": ",".join(TARGET_MODULES)}
