"""CLIP token counting for the prompt budget (77 tokens including start/end).

Uses open_clip's ``SimpleTokenizer``, the CLIP BPE tokenizer with its vocabulary
shipped in the wheel, so counting works offline. Only its ``tokenizer`` module
is loaded: importing the whole ``open_clip`` package pulls in every model
definition (seconds of start-up) just to count tokens.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

CLIP_CONTEXT = 77  # CLIP text encoder context, start and end tokens included
SPECIAL_TOKENS = 2


def _tokenizer_module():
    loaded = sys.modules.get("open_clip.tokenizer")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("open_clip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("open_clip_torch is required to count CLIP tokens (pip install open_clip_torch)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_emotion_director_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def _tokenizer():
    return _tokenizer_module().SimpleTokenizer()


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """Number of CLIP BPE tokens in ``text``, without the start and end tokens."""
    return len(_tokenizer().encode(text))


def content_budget(context: int = CLIP_CONTEXT) -> int:
    """Tokens available for text in a context of ``context`` tokens."""
    return context - SPECIAL_TOKENS
