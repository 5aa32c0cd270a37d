"""Decoupled cross-attention inputs and an independent reference for its output (softmax
attention head by head over the text tokens plus ``weight`` times over the role's image tokens
through ``to_k_ip``/``to_v_ip``), shared by the visual prompt attention and DPO role tests."""

import math

import torch

from emotion_core.visual_prompt import (
    NEGATIVE,
    POSITIVE,
    ProjectedPrompt,
    VisualPrompt,
    VisualPromptInjection,
)

HEADS = 4
DIMS = (32, 64, 32)
LATENT_BATCH = 2


def make_prompt(positive=8, negative=8, extra=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = {POSITIVE: torch.randn(positive, 768, generator=g), NEGATIVE: torch.randn(negative, 768, generator=g)}
    tokens.update({role: torch.randn(n, 768, generator=g) for role, n in (extra or {}).items()})
    return VisualPrompt(tokens, "sd15", "base", 768)


def make_injection(adapter, prompt, weights=(1.0, 0.7, 1.3), **kwargs):
    return VisualPromptInjection(ProjectedPrompt.from_prompt(adapter, prompt), weights, **kwargs)


def qkv(chunks, layer=1, text_tokens=7, queries=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    batch, inner = chunks * LATENT_BATCH, DIMS[layer]
    return (torch.randn(batch, queries, inner, generator=g), torch.randn(batch, text_tokens, inner, generator=g),
            torch.randn(batch, text_tokens, inner, generator=g))


def options(cond_or_uncond, sigma=None):
    opts = {"n_heads": HEADS, "cond_or_uncond": list(cond_or_uncond), "attn_precision": None}
    if sigma is not None:
        opts["sigmas"] = torch.full((LATENT_BATCH,), float(sigma))
    return opts


def ref_attention(q, k, v, heads):
    """Softmax attention of one sample ``[N, H*D]``, head by head."""
    d = q.shape[-1] // heads
    out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(d)
        out.append(torch.softmax(scores, dim=-1) @ v[:, sl])
    return torch.cat(out, dim=-1)


def reference(adapter, prompt, q, k, v, chunks_roles, layer, weight):
    """text attention + weight * attention over the role's tokens through to_k_ip/to_v_ip."""
    kv_layer = adapter.ip_adapter[str(2 * layer + 1)]
    out = []
    for i in range(q.shape[0]):
        role = chunks_roles[i // LATENT_BATCH]
        tokens = prompt.tokens[role]
        k_ip, v_ip = tokens @ kv_layer.to_k_ip.weight.T, tokens @ kv_layer.to_v_ip.weight.T
        out.append(ref_attention(q[i], k[i], v[i], HEADS) + weight * ref_attention(q[i], k_ip, v_ip, HEADS))
    return torch.stack(out)
