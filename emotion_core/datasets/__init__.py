"""Published emotion datasets read as released (EmoSet-118K's tree and split lists)."""

from .emoset import EMOSET_ATTRIBUTES, EMOSET_SPLITS, is_emoset_tree, read_emoset

__all__ = ["EMOSET_ATTRIBUTES", "EMOSET_SPLITS", "is_emoset_tree", "read_emoset"]
