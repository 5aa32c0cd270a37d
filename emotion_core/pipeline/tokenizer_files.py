"""CLIP tokenizer files (``vocab.json`` + ``merges.txt``) built offline from the byte-level
BPE table that open_clip ships (``bpe_simple_vocab_16e6.txt.gz``).

The full table gives exactly the 49408-token vocabulary of OpenAI's CLIP text
encoders (SD1.5's tokenizer): 256 byte symbols, the same with ``</w>``, 48894
merges, then ``<|startoftext|>`` and ``<|endoftext|>``. A smaller vocabulary
(tiny test encoders, or a single-file checkpoint with a cut-down embedding)
keeps the first merges, so it tokenises the same way up to where it stops.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from ..errors import ModelFormatError

FULL_VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_SPECIAL = 2
_BYTE_SYMBOLS = 2 * 256
MIN_VOCAB_SIZE = _BYTE_SYMBOLS + _SPECIAL
MAX_LENGTH = 77


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte -> printable unicode symbol table, in byte-value order of the table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


@lru_cache(maxsize=1)
def _bpe_merges() -> tuple[str, ...]:
    spec = find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFormatError("building a CLIP tokenizer offline needs open_clip's bundled BPE table; "
                               "install open_clip_torch")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise ModelFormatError(f"open_clip's BPE table is missing: {path}")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    return tuple(lines[1:FULL_VOCAB_SIZE - MIN_VOCAB_SIZE + 1])


def write_clip_tokenizer(folder: str | Path, vocab_size: int = FULL_VOCAB_SIZE) -> Path:
    """Write a ``CLIPTokenizer`` folder with ``vocab_size`` tokens (the last two are BOS, EOS)."""
    if not MIN_VOCAB_SIZE <= vocab_size <= FULL_VOCAB_SIZE:
        raise ModelFormatError(f"a CLIP BPE vocabulary has {MIN_VOCAB_SIZE}..{FULL_VOCAB_SIZE} tokens, "
                               f"the text encoder has {vocab_size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = _bpe_merges()[: vocab_size - MIN_VOCAB_SIZE]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH, "bos_token": BOS,
              "eos_token": EOS, "unk_token": EOS, "pad_token": EOS, "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=1),
        encoding="utf-8")
    return folder
