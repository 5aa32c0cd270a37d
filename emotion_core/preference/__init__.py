"""Preference pairs for negative-visual DPO: one dataset format (JSONL + PNG) written by the
ComfyUI collector node and read by ``train-dpo``, plus readers for EmoEditor's EmoPair JSON
and EmoSet's one-folder-per-emotion layout."""

from .format import PAIRS_FILE, PreferencePair, VisualPromptRef
from .reader import ReadResult, read_dataset
from .store import PreferenceStore, safe_dataset_dir

__all__ = ["PAIRS_FILE", "PreferencePair", "PreferenceStore", "ReadResult", "VisualPromptRef", "read_dataset",
           "safe_dataset_dir"]
