"""Stand-in for ``comfy.ldm.modules.attention``: ``optimized_attention`` with the real
signature, ``[B, N, heads * dim]`` in and out, on torch's scaled dot product kernel. ComfyUI
picks the function by backend and the first three are ``q, k, v`` or ``query, key, value``:
callers pass them by position, so here they are positional-only."""

import torch.nn.functional as F


def optimized_attention(q, k, v, /, heads, mask=None, attn_precision=None, skip_reshape=False,
                        skip_output_reshape=False, **kwargs):
    if skip_reshape or skip_output_reshape:
        raise NotImplementedError("the stand-in takes and returns [B, N, heads * dim] only")
    b = q.shape[0]
    q, k, v = (t.reshape(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
    if mask is not None:
        mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))  # add the batch and heads dimensions
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, -1, heads * out.shape[-1])
