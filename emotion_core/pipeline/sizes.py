"""Image sizes the SD1.5-family pipeline is run at: multiples of the VAE's 8 px grid up to
4096 a side (checked before a model loads), the model's native size, and an init image
brought to the run's size."""

from __future__ import annotations

import os

import torch

from ..errors import InvalidInputError
from ..images import load_image, resize_image

SIZE_MULTIPLE = 8  # the SD1.5 VAE's downscale factor
MAX_SIDE = 4096


def check_side(name: str, value: int | None) -> None:
    """``value`` (``None``: not given) is a usable image side, else an error naming ``name``."""
    if value is not None and not (SIZE_MULTIPLE <= value <= MAX_SIDE and value % SIZE_MULTIPLE == 0):
        raise InvalidInputError(f"{name} must be a multiple of {SIZE_MULTIPLE} between {SIZE_MULTIPLE} and "
                                f"{MAX_SIDE}, got {value}")


def native_side(pipe) -> int:
    """The side the model was trained at (512 for SD1.5)."""
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


def load_init_image(path: str | os.PathLike, width: int | None = None, height: int | None = None) -> torch.Tensor:
    """The image an img2img run starts from, as IMAGE ``[1,H,W,3]``: resized when a width or
    height is given (the other side kept), else at its own size, which must then be on the
    grid (an image is never resized unasked)."""
    image = load_image(path)
    own_height, own_width = image.shape[1:3]
    if width is None and height is None:
        if own_width % SIZE_MULTIPLE or own_height % SIZE_MULTIPLE:
            raise InvalidInputError(f"{path} is {own_width}x{own_height}; sizes must be multiples of {SIZE_MULTIPLE} "
                                    "(give a width and height to resize it)")
        return image
    height, width = height or own_height, width or own_width
    check_side("height", height)
    check_side("width", width)
    return resize_image(image, height, width)
