"""Tiny stand-ins for the objects ComfyUI passes between nodes (MODEL, CLIP, VAE, CLIP_VISION),
for node tests on CPU in milliseconds. Import them as ``comfy_standins.tiny_models`` (the
tests folder is on ``sys.path`` with or without ``COMFYUI_PATH``; some are used with the real
ComfyUI too). Their methods have the real classes' signatures: ``STANDS_IN_FOR`` names the
class each one stands in for, and tests/test_comfy_standins.py holds them to it."""

from __future__ import annotations

import torch
from torch import nn

# class name -> (the real class, the test conveniences it adds that the real class lacks)
STANDS_IN_FOR = {
    "StandInAttention": ("comfy.ldm.modules.attention.CrossAttention", set()),
    "StandInSampling": ("comfy.model_sampling.ModelSamplingDiscrete", set()),
    "StandInBaseModel": ("comfy.model_base.BaseModel", set()),
    "TinyLatentModel": ("comfy.model_base.BaseModel", set()),
    "TinyUnet": ("comfy.model_base.BaseModel", set()),
    "TinyModelPatcher": ("comfy.model_patcher.ModelPatcher", set()),
    "TinyVae": ("comfy.sd.VAE", set()),
    "TinyComfyClip": ("comfy.sd.CLIP", {"encode_text"}),
    "FakeClipVision": ("comfy.clip_vision.ClipVisionModel", set()),
}

# The tiny test checkpoint's UNet layout (emotion_core/testing/checkpoint.py): the test adapter fits it.
CHECKPOINT_UNET = dict(model_channels=320, num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[1, 1],
                       transformer_depth_middle=1, transformer_depth_output=[1, 1, 1, 1], context_dim=768,
                       num_heads=8, num_head_channels=-1)


def init_weights(module, seed=0):
    """Deterministic small weights (1-d weights are norm scales: ones, biases zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
    return module


# --- a UNet with ComfyUI's attn2 layout (comfy/ldm/modules/attention.py, openaimodel.py) ----------------

class StandInAttention(nn.Module):
    def __init__(self, dim, context_dim, heads, device=None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False, device=device)
        self.to_k = nn.Linear(context_dim, dim, bias=False, device=device)
        self.to_v = nn.Linear(context_dim, dim, bias=False, device=device)
        self.to_out = nn.Linear(dim, dim, device=device)


def _standin_transformer(depth, dim, config, device):
    heads = config["num_heads"] if config["num_heads"] > 0 else dim // config["num_head_channels"]
    module = nn.Module()
    module.transformer_blocks = nn.ModuleList()
    for _ in range(depth):
        block = nn.Module()
        block.attn2 = StandInAttention(dim, config["context_dim"], heads, device)
        module.transformer_blocks.append(block)
    return module


def standin_unet(config, device="meta"):
    """ComfyUI's UNet block numbering: input block 0 is conv_in, a level ends with a downsample
    block; output levels have one block more than input levels."""
    unet = nn.Module()
    unet.input_blocks, unet.output_blocks = nn.ModuleList([nn.Sequential()]), nn.ModuleList()
    depths, out_depths = list(config["transformer_depth"]), list(config["transformer_depth_output"])
    mults = config["channel_mult"]
    for level, mult in enumerate(mults):
        for _ in range(config["num_res_blocks"][level]):
            depth, dim = depths.pop(0), config["model_channels"] * mult
            unet.input_blocks.append(nn.Sequential(*([_standin_transformer(depth, dim, config, device)] if depth else [])))
        if level != len(mults) - 1:
            unet.input_blocks.append(nn.Sequential())
    top = config["model_channels"] * mults[-1]
    unet.middle_block = nn.Sequential(_standin_transformer(config["transformer_depth_middle"], top, config, device))
    for level, mult in reversed(list(enumerate(mults))):
        for _ in range(config["num_res_blocks"][level] + 1):
            depth, dim = out_depths.pop(), config["model_channels"] * mult  # ComfyUI pops these from the end
            unet.output_blocks.append(nn.Sequential(*([_standin_transformer(depth, dim, config, device)] if depth else [])))
    return unet


class StandInSampling:
    def percent_to_sigma(self, percent):
        return 999999999.9 if percent <= 0 else 0.0 if percent >= 1 else 14.6 * (1 - percent) ** 2


class StandInBaseModel(nn.Module):
    """``apply_model`` runs every attn2 in execution order with ComfyUI's replace-patch lookup;
    each block reads the first ``inner`` channels of ``x`` ``[B, N, W]``."""

    def __init__(self, unet):
        super().__init__()
        self.diffusion_model, self.model_sampling = unet, StandInSampling()

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},  # noqa: B006
                    **kwargs):
        from comfy.ldm.modules.attention import optimized_attention

        unet, outputs = self.diffusion_model, []
        order = [("input", list(unet.input_blocks)), ("middle", [unet.middle_block]), ("output", list(unet.output_blocks))]
        replace = transformer_options.get("patches_replace", {}).get("attn2", {})
        for name, blocks in order:
            for number, sequence in enumerate(blocks):
                for layer in sequence:
                    for index, block in enumerate(layer.transformer_blocks):
                        attn = block.attn2
                        extra = {k: v for k, v in transformer_options.items() if k not in ("patches", "patches_replace")}
                        extra.update(n_heads=attn.heads, attn_precision=None, block=(name, number), block_index=index)
                        n = x[..., :attn.to_q.in_features]
                        q, k, v = attn.to_q(n), attn.to_k(c_crossattn), attn.to_v(c_crossattn)
                        patch = replace.get((name, number, index), replace.get((name, number)))
                        out = patch(q, k, v, extra) if patch else optimized_attention(q, k, v, attn.heads)
                        outputs.append(attn.to_out(out).flatten(1))
        return torch.cat(outputs, dim=1)


class TinyLatentModel(StandInBaseModel):
    """A UNet stand-in for both roles a MODEL plays in the workflows: latent in, latent out
    (a conv plus a text shift, as TinyUnet), and, when the model options carry attn2 replace
    patches, every attn2 block run with ComfyUI's patch lookup (the visual prompt injection
    path) feeding a small term into the output."""

    latent_format = None

    def __init__(self, unet_config=CHECKPOINT_UNET):
        super().__init__(init_weights(standin_unet(unet_config, device="cpu")))
        self.conv = init_weights(nn.Conv2d(4, 4, 3, padding=1), seed=1)
        self.text = init_weights(nn.Linear(8, 4), seed=2)

    @torch.no_grad()
    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},  # noqa: B006
                    **kwargs):
        out = torch.tanh(self.conv(x)) + self.text(c_crossattn[..., :8].mean(dim=1)).view(-1, 4, 1, 1)[: x.shape[0]]
        if transformer_options.get("patches_replace", {}).get("attn2"):
            tokens = x.flatten(2).transpose(1, 2).repeat(1, 1, 160)  # [B, hw, 640]: wide enough for every block
            # the first 8 text tokens keep the attention cheap; the image tokens are appended by the patches
            context = nn.functional.pad(c_crossattn[:, :8], (0, 768 - c_crossattn.shape[-1]))
            attn = super().apply_model(tokens, t, c_crossattn=context, transformer_options=transformer_options)
            out = out + 0.01 * attn.mean(dim=1).view(-1, 1, 1, 1)
        return out


# --- the critic loop's model and VAE ---------------------------------------------------------------------

class TinyUnet(nn.Module):
    """``apply_model(x, sigma, c_crossattn=...)`` -> a denoised latent that depends on x and the text."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.text = nn.Linear(8, 4)
        self.latent_format = None
        self.calls = 0

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},  # noqa: B006
                    **kwargs):
        self.calls += x.shape[0]
        shift = self.text(c_crossattn.mean(dim=1)).view(-1, 4, 1, 1)
        return torch.tanh(self.conv(x)) + shift[:1]


class TinyModelPatcher:
    def __init__(self):
        self.model = TinyUnet()
        self.load_device = torch.device("cpu")
        self.model_options = {}


class TinyVae:
    """8x spatial compression; 4 latent channels from the 3 colour channels and their mean."""

    def __init__(self):
        self.encoded = 0

    def spacial_compression_encode(self):
        return 8

    def encode(self, pixel_samples):
        self.encoded += 1
        x = nn.functional.avg_pool2d(pixel_samples.movedim(-1, 1), 8)
        return torch.cat([x, x.mean(dim=1, keepdim=True)], dim=1) * 2 - 1

    def decode(self, samples_in, vae_options={}):  # noqa: B006 - ComfyUI's signature
        x = nn.functional.interpolate(samples_in[:, :3], scale_factor=8, mode="nearest")
        return ((x + 1) / 2).clamp(0, 1).movedim(1, -1)


# --- text and image encoders ----------------------------------------------------------------------------

class TinyComfyClip:
    """The real CLIP BPE tokenizer (shipped with open_clip) and a tiny random CLIP text model."""

    def __init__(self, width: int = 32, seed: int = 0):
        from open_clip.tokenizer import SimpleTokenizer
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

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
        """CLIPTextEncode's output: ``[[cond, {"pooled_output": pooled}]]``."""
        out = self.encode_from_tokens(self.tokenize(text), return_pooled=True, return_dict=True)
        return [[out["cond"], {"pooled_output": out["pooled_output"]}]]


class FakeClipVision:
    """``encode_image`` returns ComfyUI's output keys with deterministic features."""

    def __init__(self, embeds=1024, hidden=1280):
        self.embeds, self.hidden, self.calls = embeds, hidden, 0

    def encode_image(self, image, crop=True):
        self.calls += 1
        g = torch.Generator().manual_seed(int(image.sum() * 1000) % 10_000)
        return {"image_embeds": torch.randn(image.shape[0], self.embeds, generator=g),
                "penultimate_hidden_states": torch.randn(image.shape[0], 257, self.hidden, generator=g)}
