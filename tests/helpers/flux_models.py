"""A tiny ComfyUI ``Flux`` (comfy.ldm.flux.model) in a ModelPatcher, with reference forwards of
the published Flux IP-Adapter processors (written from reading XLabs' IPDoubleStreamBlockProcessor
and InstantX's IPAFluxAttnProcessor2_0 / its DoubleStreamBlockIPA, SingleStreamBlockIPA), for the
real-ComfyUI tests. Widths are tiny; the key layout and the T5 width (4096) are Flux.1's."""

import torch
import torch.nn.functional as F
from torch import nn

TINY_FLUX = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=64,
                 mlp_ratio=4.0, num_heads=2, depth=2, depth_single_blocks=3, axes_dim=[8, 12, 12], theta=10000,
                 patch_size=2, qkv_bias=True, guidance_embed=True)
HEAD_DIM = 32


def tiny_flux_patcher(seed=0):
    import comfy.ops
    from comfy.ldm.flux.model import Flux
    from comfy.model_patcher import ModelPatcher

    torch.manual_seed(seed)
    holder = nn.Module()
    holder.diffusion_model = Flux(**TINY_FLUX, dtype=torch.float32, device="cpu", operations=comfy.ops.manual_cast)
    with torch.no_grad():
        for name, p in holder.diffusion_model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.02 if p.ndim == 1 else p.shape[-1] ** -0.5))
    return ModelPatcher(holder, torch.device("cpu"), torch.device("cpu"))


def flux_inputs(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(batch, 16, 8, 8, generator=g), timestep=torch.full((batch,), 0.7),
                context=torch.randn(batch, 5, 4096, generator=g), y=torch.randn(batch, 768, generator=g),
                guidance=torch.full((batch,), 3.5))


def run_flux(patcher, inputs, cond_or_uncond):
    options = {**patcher.model_options["transformer_options"], "cond_or_uncond": list(cond_or_uncond),
               "sigmas": inputs["timestep"][:1]}
    with torch.no_grad():
        return patcher.get_model_object("diffusion_model")(**inputs, transformer_options=options)


def _heads(t, heads):
    return t.unflatten(-1, (heads, -1)).transpose(1, 2)


def reference_xlabs_double(block, img, txt, vec, pe, k_ip, v_ip, scale):
    """x-flux: the block as usual, then img += scale * sdpa(img_q, k_ip, v_ip) with img_q the
    QK-normed query before RoPE; k_ip/v_ip [B, T, hidden]."""
    out_img, out_txt = block(img=img, txt=txt.clone(), vec=vec, pe=pe)
    mod, _ = block.img_mod(vec)
    qkv = block.img_attn.qkv((1 + mod.scale) * block.img_norm1(img) + mod.shift)
    q = qkv.view(qkv.shape[0], qkv.shape[1], 3, block.num_heads, -1).permute(2, 0, 3, 1, 4)[0]
    q = block.img_attn.norm.query_norm(q)
    ip = F.scaled_dot_product_attention(q, _heads(k_ip, block.num_heads), _heads(v_ip, block.num_heads))
    return out_img + scale * ip.transpose(1, 2).flatten(2), out_txt


def reference_instantx_double(block, img, txt, vec, pe, k_ip, v_ip, scale):
    """InstantX's DoubleStreamBlockIPA: the image attention (keys/values RMS-normed per head) is
    added to img_attn before the output projection; the rest is the block."""
    from comfy.ldm.flux.math import attention

    heads = block.num_heads
    img_mod1, img_mod2 = block.img_mod(vec)
    txt_mod1, txt_mod2 = block.txt_mod(vec)
    img_qkv = block.img_attn.qkv((1 + img_mod1.scale) * block.img_norm1(img) + img_mod1.shift)
    img_q, img_k, img_v = img_qkv.view(img_qkv.shape[0], img_qkv.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
    img_q, img_k = block.img_attn.norm(img_q, img_k, img_v)
    txt_qkv = block.txt_attn.qkv((1 + txt_mod1.scale) * block.txt_norm1(txt) + txt_mod1.shift)
    txt_q, txt_k, txt_v = txt_qkv.view(txt_qkv.shape[0], txt_qkv.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
    txt_q, txt_k = block.txt_attn.norm(txt_q, txt_k, txt_v)
    attn = attention(torch.cat((txt_q, img_q), 2), torch.cat((txt_k, img_k), 2), torch.cat((txt_v, img_v), 2), pe=pe)
    txt_attn, img_attn = attn[:, :txt.shape[1]], attn[:, txt.shape[1]:]
    k = F.rms_norm(_heads(k_ip, heads), (k_ip.shape[-1] // heads,), eps=1e-5)
    v = F.rms_norm(_heads(v_ip, heads), (v_ip.shape[-1] // heads,), eps=1e-5)
    img_attn = img_attn + scale * F.scaled_dot_product_attention(img_q, k, v).transpose(1, 2).flatten(2)
    img = img + img_mod1.gate * block.img_attn.proj(img_attn)
    img = img + img_mod2.gate * block.img_mlp((1 + img_mod2.scale) * block.img_norm2(img) + img_mod2.shift)
    txt = txt + txt_mod1.gate * block.txt_attn.proj(txt_attn)
    txt = txt + txt_mod2.gate * block.txt_mlp((1 + txt_mod2.scale) * block.txt_norm2(txt) + txt_mod2.shift)
    return img, txt


def reference_instantx_single(block, x, vec, pe, k_ip, v_ip, scale):
    """InstantX's SingleStreamBlockIPA: image attention over every token's query, added before linear2."""
    from comfy.ldm.flux.math import attention

    heads = block.num_heads
    mod, _ = block.modulation(vec)
    qkv, mlp = torch.split(block.linear1((1 + mod.scale) * block.pre_norm(x) + mod.shift),
                           [3 * block.hidden_size, block.mlp_hidden_dim], dim=-1)
    q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k = block.norm(q, k, v)
    attn = attention(q, k, v, pe=pe)
    kn = F.rms_norm(_heads(k_ip, heads), (k_ip.shape[-1] // heads,), eps=1e-5)
    vn = F.rms_norm(_heads(v_ip, heads), (v_ip.shape[-1] // heads,), eps=1e-5)
    attn = attn + scale * F.scaled_dot_product_attention(q, kn, vn).transpose(1, 2).flatten(2)
    return x + mod.gate * block.linear2(torch.cat((attn, block.mlp_act(mlp)), 2))
