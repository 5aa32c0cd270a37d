"""Image tensors in ComfyUI's layout (float32 ``[B,H,W,C]`` in 0..1): checks,
channel fixes and conversions shared by critics, metrics and the CLI."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import InvalidInputError

MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION


def as_rgb_batch(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate an IMAGE batch and return it as float32 ``[B,H,W,3]`` in 0..1.

    Grayscale (1 channel) is repeated to RGB; alpha (2 or 4 channels) is dropped.
    NaN/Inf, empty batches and other layouts are clear errors naming ``name``.
    """
    if not isinstance(images, torch.Tensor):
        raise InvalidInputError(f"{name}: expected an IMAGE tensor [B,H,W,C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise InvalidInputError(f"{name}: expected an IMAGE tensor [B,H,W,C], got shape {tuple(images.shape)}")
    if images.numel() == 0 or 0 in images.shape:
        raise InvalidInputError(f"{name}: the image batch is empty (shape {tuple(images.shape)})")
    if max(images.shape[1:3]) > MAX_SIDE:  # refused before anything is resized or encoded at that size
        raise InvalidInputError(f"{name}: {images.shape[2]}x{images.shape[1]} is larger than {MAX_SIDE} pixels a side "
                                f"(shape {tuple(images.shape)})")
    channels = images.shape[-1]
    if channels in (1, 2):
        images = images[..., :1].expand(*images.shape[:-1], 3)
    elif channels == 4:
        images = images[..., :3]
    elif channels != 3:
        raise InvalidInputError(
            f"{name}: expected 1 (gray), 3 (RGB) or 4 (RGBA) channels in the last dimension, got {channels} "
            f"(shape {tuple(images.shape)}); is the tensor channels-first?"
        )
    images = images.float()
    if not torch.isfinite(images).all():
        raise InvalidInputError(f"{name}: the image contains NaN or infinite values")
    return images.clamp(0.0, 1.0)


def to_nchw(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` -> validated RGB ``[B,3,H,W]``."""
    return as_rgb_batch(images, name).permute(0, 3, 1, 2).contiguous()


def resize_shorter_center_crop(pixels: torch.Tensor, size: int, mode: str = "bicubic") -> torch.Tensor:
    """CLIP-style preprocessing on ``[B,3,H,W]``: resize the shorter side to ``size``, centre crop."""
    h, w = pixels.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = F.interpolate(pixels, size=(new_h, new_w), mode=mode, align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[..., top : top + size, left : left + size].clamp(0.0, 1.0)


def resize_exact(pixels: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[B,C,H,W]`` to ``size`` (``s`` for ``s x s``, or ``(h, w)``) ignoring aspect
    (torchvision ``Resize((h, w))``), antialiased, clamped to 0..1."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(pixels, size=size, mode=mode, align_corners=False, antialias=True).clamp(0.0, 1.0)


def crop_to_multiple(images: torch.Tensor, multiple: int, name: str = "image") -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` cut at the bottom and right to the largest size that is a multiple of
    ``multiple`` (a VAE's grid), so no pixel moves and none is resampled. An image smaller than
    one cell is an error naming ``name``."""
    height, width = images.shape[1] // multiple * multiple, images.shape[2] // multiple * multiple
    if not height or not width:
        raise InvalidInputError(f"{name} is {images.shape[2]}x{images.shape[1]} pixels; at least {multiple}x{multiple} "
                                f"are needed (it is cropped to the {multiple} px grid)")
    return images[:, :height, :width]


def resize_image(images: torch.Tensor, height: int, width: int, mode: str = "bicubic") -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` resized to ``height x width`` (``resize_exact`` on the channels-first view)."""
    return resize_exact(images.permute(0, 3, 1, 2), (height, width), mode).permute(0, 2, 3, 1).contiguous()


def pil_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` resized to ``height x width`` as torchvision's ``Resize((h, w))`` resizes a
    PIL image (EmoEditor's test.py): each image to 8-bit RGB, PIL's antialiased bilinear filter, back
    to 0..1 (exact k/255 levels)."""
    resized = [np.asarray(to_pil(image).resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
               for image in as_rgb_batch(images)]
    return torch.from_numpy(np.stack(resized))


def stack_same_size(images: Sequence[torch.Tensor], name: str = "images") -> torch.Tensor:
    """Concatenate IMAGE tensors into one batch; mixed sizes are an error naming the sizes."""
    if not images:
        raise InvalidInputError(f"{name}: no images given")
    batches = [as_rgb_batch(im, f"{name}[{i}]") for i, im in enumerate(images)]
    sizes = sorted({tuple(b.shape[1:3]) for b in batches})
    if len(sizes) > 1:
        raise InvalidInputError(
            f"{name}: images of mixed sizes {', '.join(f'{h}x{w}' for h, w in sizes)} cannot form one batch; "
            "resize them to one size first"
        )
    return torch.cat(batches, dim=0)


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as IMAGE ``[1,H,W,3]`` float32 in 0..1 (EXIF rotation applied)."""
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            array = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable image file ({exc})") from exc
    return torch.from_numpy(array).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """One IMAGE ``[H,W,C]`` (or ``[1,H,W,C]``) as an 8-bit RGB PIL image."""
    if image.ndim == 4:
        image = image[0]
    array = (as_rgb_batch(image)[0].cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(array)
