"""Each training image VAE-encoded once, into an on-disk cache keyed by the file's content.

Why: the VAE encoder costs more than the UNet steps it feeds at small batch sizes, and a
DPO step needs two images; a data set is read many times. Entries are keyed by the
SHA-256 of the image file's bytes (renamed or copied files share an entry, an edited file
gets a new one) inside a folder named for the VAE's weights and the resolution (another
VAE or size never reads them). Each entry is written whole (temp file + rename), so an
interrupted pass resumes where it stopped. Entries hold the same float32 latents the
trainer would encode on the fly (the distribution's mean), so a cached run equals an
uncached one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from ..atomic import temp_beside

log = logging.getLogger(__name__)

LATENT_CHANNELS = 4
DEFAULT_BUDGET_GB = 8.0


def file_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """A short digest of a module's weights (which VAE made a cache entry)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def estimated_bytes(images: int, resolution: int) -> int:
    """Disk size of the cache for ``images`` distinct files (float32 latents, 1/8 side)."""
    return images * LATENT_CHANNELS * (resolution // 8) ** 2 * 4


def fits_budget(images: int, resolution: int, budget_gb: float) -> bool:
    return estimated_bytes(images, resolution) <= budget_gb * 1e9


class LatentCache:
    """``latents(path)`` from the cache folder (filled by ``fill``)."""

    def __init__(self, folder: str | os.PathLike, vae_digest: str, resolution: int):
        self.folder = Path(folder) / f"vae-{vae_digest}_{resolution}px"
        self.resolution = resolution
        self._keys: dict[str, str] = {}

    def _entry(self, path) -> Path:
        key = self._keys.get(str(path))
        if key is None:
            key = self._keys[str(path)] = file_digest(path)
        return self.folder / f"{key}.safetensors"

    def fill(self, paths: Sequence, encode: Callable[[object], torch.Tensor], shard: tuple[int, int] = (0, 1)) -> int:
        """Encode this shard's (``(index, count)`` of the distinct paths) missing entries; returns
        how many were encoded. Every process fills its own shard, then all read every entry."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        index, count = shard
        encoded = 0
        for path in list(dict.fromkeys(str(p) for p in paths))[index::count]:
            entry = self._entry(path)
            if entry.is_file():
                continue
            latents = encode(path).detach().to("cpu", torch.float32).contiguous()
            with temp_beside(entry) as tmp:
                save_file({"latents": latents}, str(tmp))
                os.replace(tmp, entry)
            encoded += 1
        return encoded

    def latents(self, path) -> torch.Tensor:
        from safetensors.torch import load_file

        return load_file(str(self._entry(path)))["latents"]


def distinct_images(paths: Iterable) -> list[str]:
    return list(dict.fromkeys(str(p) for p in paths))
