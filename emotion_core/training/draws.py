"""The training data order: a deterministic stream of *draws*, one per pair seen.

Draw ``g`` (0, 1, 2, ... over the whole run) is pair ``permutation(seed, epoch)[g mod n]``
with timestep and noise from a generator seeded by (seed, g). Nothing depends on which
process reads a draw or on the batch it lands in, so with ``accelerate``'s sharded
dataloader (process i takes batches i, i+N, ...) N processes with per-process batch B read
exactly the draws one process with batch N·B reads, and a run resumed at optimizer step s
starts at draw s · (global batch) and continues the same stream.
"""

from __future__ import annotations

import zlib
from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from .data import Example


def seed_of(*parts) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


class SeededDrawSampler(Sampler):
    """Yields ``(draw, pair index)`` for draws ``start`` .. ``stop - 1``; each epoch over the
    ``pairs`` is its own seeded permutation."""

    def __init__(self, pairs: int, seed: int, start: int, stop: int):
        self.pairs, self.seed, self.start, self.stop = pairs, seed, start, stop
        self._epoch, self._order = -1, None

    def __len__(self) -> int:
        return self.stop - self.start

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(seed_of(self.seed, "epoch", epoch))
            self._epoch, self._order = epoch, torch.randperm(self.pairs, generator=generator)
        return self._order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for draw in range(self.start, self.stop):
            epoch, offset = divmod(draw, self.pairs)
            yield draw, int(self._permutation(epoch)[offset])


class DrawDataset(Dataset):
    """A draw -> what the model needs for that pair: both images' latents, the prompt's text
    embedding, both visual prompts (``tokens`` or ``embeds``), the timestep and the noise."""

    def __init__(self, examples: Sequence[Example], seed: int, timesteps: int,
                 latents: Callable[[object], torch.Tensor], text: Callable[[str], torch.Tensor],
                 visual: Callable[[object], dict]):
        self.examples, self.seed, self.timesteps = examples, seed, timesteps
        self.latents, self.text, self.visual = latents, text, visual

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        draw, index = item
        example = self.examples[index]
        pair = example.pair
        latents = torch.stack([self.latents(pair.chosen).cpu(), self.latents(pair.rejected).cpu()])
        generator = torch.Generator().manual_seed(seed_of(self.seed, "draw", draw))
        timestep = torch.randint(0, self.timesteps, (), generator=generator)
        noise = torch.randn(latents.shape[1:], generator=generator)
        return {"latents": latents, "text": self.text(pair.prompt).cpu(), "timestep": timestep, "noise": noise,
                "positive": self.visual(example.positive), "negative": self.visual(example.negative)}


def collate_draws(items: list[dict]) -> dict:
    """Stack the fixed-shape tensors; visual prompts stay one dict per pair (token counts differ)."""
    batch = {key: torch.stack([item[key] for item in items]) for key in ("latents", "text", "timestep", "noise")}
    batch["positive"] = [item["positive"] for item in items]
    batch["negative"] = [item["negative"] for item in items]
    return batch
