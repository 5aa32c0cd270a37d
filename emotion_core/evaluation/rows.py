"""One ``rows.jsonl`` row per item: every critic's 8-way distribution (canonical order, by name,
whatever the critic's own class order), top emotion and EmoGen/EmoEdit per-image numbers; for an
edit (an item with a source) also EmoEdit's Emo-S and SSIM, EmoEditor's ESMI and SSIM gate."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch

from ..critics.base import EmotionCritic
from ..metrics.emoedit import as_image, emoedit_emo_s, emoedit_ssim
from ..metrics.emogen import emogen_row
from ..metrics.esmi import EsmiSource, esmi, prepare_source
from ..ssim import ssim
from ..taxonomy import EMOTIONS, as_dict

SOURCE_CACHE = 32  # prepared ESMI sources kept per critic (edits of one source usually come together)


class RowScorer:
    """Scores decoded batches (``loading.ItemImages``) with named critics."""

    def __init__(self, critics: Mapping[str, EmotionCritic], batch_size: int, clip=None):
        self.critics = dict(critics)
        self.batch_size = batch_size
        self.clip = clip  # metrics.clip_similarity.ClipSimilarity for CLIP-score / CLIP-I, or None
        self._sources: dict[str, OrderedDict[str, EsmiSource]] = {name: OrderedDict() for name in self.critics}

    def _distributions(self, critic: EmotionCritic, images: list[torch.Tensor]) -> list[torch.Tensor]:
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[1:3]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(images)
        for indices in by_size.values():
            probabilities = critic.predict(torch.cat([images[i] for i in indices]), batch_size=self.batch_size)
            for i, row in zip(indices, probabilities):
                out[i] = row
        return out

    def _esmi_source(self, name: str, critic: EmotionCritic, path) -> EsmiSource:
        cache = self._sources[name]
        key = str(path)
        if key not in cache:
            cache[key] = prepare_source(critic, key)
            if len(cache) > SOURCE_CACHE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

    def score(self, batch: list[dict]) -> list[dict]:
        rows = [_base(entry) for entry in batch]
        readable = [i for i, entry in enumerate(batch) if entry["reason"] is None]
        images = [batch[i]["image"] for i in readable]
        for name, critic in self.critics.items():
            distributions = self._distributions(critic, images) if images else []
            for i, distribution in zip(readable, distributions):
                item = batch[i]["item"]
                entry = {"distribution": as_dict(distribution.tolist()), "top": EMOTIONS[int(distribution.argmax())],
                         **emogen_row(distribution, item.target)}
                if item.source is not None:
                    edit, source = batch[i]["pair"]
                    entry["emo_s"] = emoedit_emo_s(critic, edit, source, item.target)
                    scores = esmi(critic, self._esmi_source(name, critic, item.source), str(item.image), item.target)
                    entry.update(esmi=float(scores.esmi[0]), s_emo=float(scores.emotion[0]),
                                 s_str=float(scores.structure[0]))
                rows[i]["critics"][name] = entry
        for i in readable:
            if batch[i]["item"].source is not None:
                edit, source = batch[i]["pair"]
                rows[i]["ssim_emoedit"] = emoedit_ssim(edit, source)
                rows[i]["ssim_emoeditor"] = float(ssim(batch[i]["source"], batch[i]["image"], mode="emoeditor")[0])
                if self.clip is not None:
                    rows[i]["clip_i"] = self.clip.clip_i(as_image(edit), as_image(source))
            if self.clip is not None and batch[i]["item"].prompt:
                score = self.clip.clip_score(batch[i]["image"], [batch[i]["item"].prompt])
                rows[i]["clip_score"] = float(score[0])
        return rows


def _base(entry: dict) -> dict:
    item = entry["item"]
    row = {"index": item.index, "key": item.key, "image": item.label, "path": str(item.image), "target": item.target,
           "source": None if item.source is None else str(item.source), "prompt": item.prompt}
    if entry["reason"] is not None:
        row["skipped"] = entry["reason"]
    else:
        row["critics"] = {}
    return row
