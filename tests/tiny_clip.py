"""A ComfyUI-``CLIP``-shaped text encoder for node tests without ComfyUI: the real
CLIP BPE tokenizer (shipped with open_clip) and a tiny random CLIP text model,
behind ComfyUI's ``tokenize`` / ``encode_from_tokens`` signatures."""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModelWithProjection


class TinyComfyClip:
    def __init__(self, width: int = 32, seed: int = 0):
        from open_clip.tokenizer import SimpleTokenizer

        self._tokenizer = SimpleTokenizer()
        torch.manual_seed(seed)
        config = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1,
                                num_attention_heads=2, max_position_embeddings=77, projection_dim=width)
        self.model = CLIPTextModelWithProjection(config).eval()

    def tokenize(self, text, return_word_ids=False, **kwargs):
        ids = self._tokenizer([text], context_length=77)[0].tolist()
        return {"l": [[(t, 1.0) for t in ids]]}

    @torch.no_grad()
    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        ids = torch.tensor([[t for t, _w in tokens["l"][0]]])
        out = self.model(input_ids=ids)
        cond, pooled = out.last_hidden_state, out.text_embeds
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_text(self, text):
        out = self.encode_from_tokens(self.tokenize(text), return_pooled=True, return_dict=True)
        return [[out["cond"], {"pooled_output": out["pooled_output"]}]]
