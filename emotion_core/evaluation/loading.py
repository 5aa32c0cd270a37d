"""Images read in DataLoader workers (as the papers' scripts read them: no EXIF rotation):
``ItemImages`` decodes one item (its image, and for an edit
the source plus EmoEdit's 512x512 pair) so the main process only runs critics. An unreadable file
becomes a ``reason`` instead of an image: the row is written as skipped, never dropped.

Batches are fixed slices of the whole item list (batch k holds items ``k*B .. k*B+B-1``), whatever
the number of processes or what a resumed run still has to do, so every row is computed in the
same batch as in an uninterrupted single-process run (CPU kernels can round differently with
another batch composition)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InvalidInputError
from ..metrics.emoedit import emoedit_pair
from .items import EvalItem


def read_as_upstream(path) -> torch.Tensor:
    """IMAGE ``[1,H,W,3]`` of a file read as EmoGen, EmoEdit and EmoEditor read theirs:
    ``Image.open(path).convert("RGB")``, no EXIF rotation."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable image file ({exc})") from exc
    return torch.from_numpy(array).unsqueeze(0)


class ItemImages(Dataset):
    def __init__(self, items: Sequence[EvalItem]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        item = self.items[position]
        loaded = {"item": item, "image": None, "source": None, "pair": None, "reason": None}
        try:
            loaded["image"] = read_as_upstream(item.image)
            if item.source is not None:
                loaded["source"] = read_as_upstream(item.source)
                loaded["pair"] = emoedit_pair(item.image, item.source)
        except InvalidInputError as exc:
            loaded["reason"] = str(exc)
        return loaded


def fixed_batches(count: int, batch_size: int) -> list[list[int]]:
    return [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]


def shard_batches(batches: list[list[int]], done: set[int], rank: int, processes: int) -> list[list[int]]:
    """This process's batches (every ``processes``-th, from ``rank``) that still hold an unwritten row."""
    return [batch for number, batch in enumerate(batches)
            if number % processes == rank and not all(index in done for index in batch)]


def _as_list(batch: list[dict]) -> list[dict]:
    return batch


def image_loader(items: Sequence[EvalItem], batches: list[list[int]], workers: int) -> DataLoader:
    """Batches of decoded items, ``workers`` processes decoding ahead (bounded prefetch)."""
    return DataLoader(ItemImages(items), batch_sampler=batches, num_workers=workers, collate_fn=_as_list,
                      prefetch_factor=2 if workers else None, persistent_workers=False)
