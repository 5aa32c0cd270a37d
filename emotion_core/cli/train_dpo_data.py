"""The data side of ``emotion-director train-dpo``: which pairs, and where each branch's
visual prompt comes from.

Pairs without recorded visual prompts (EmoEditor's EmoPair, EmoSet-118K) get both from a
prompt bank (``--bank``), retrieved by the pair's caption: the target emotion's clusters
for the winner's branch, another emotion's clusters for the same caption for the
negative visual branch (``--negative-emotion``). ``--dry-run`` prints that provenance per
pair without any diffusion model, so the data can be checked before training.

``train_dpo`` calls ``add_data_arguments`` on its parser and ``load_examples`` (or
``dry_run`` with ``--dry-run``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InvalidInputError
from .arguments import positive_int

log = logging.getLogger(__name__)

POLICY_HELP = ("negative visual prompt's emotion: opposite-valence (default: the pair's own negative emotion when "
               "it has the other valence, else the other-valence emotion whose clusters are closest to the caption), "
               "most-confused (the emotion --critic most confuses the target with on the bank's images), or an "
               "emotion name")
CONFUSION_SAMPLES = 64


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options of ``train-dpo``."""
    parser.add_argument("--bank", metavar="FILE",
                        help="prompt bank (bank build) the visual prompts of pairs without recorded ones come from, "
                        "retrieved by each pair's caption; needed for EmoPair and EmoSet data")
    parser.add_argument("--bank-clip", metavar="FILE",
                        help="the open_clip file the bank was built with (default: the file the bank names, looked "
                        "for next to the bank and in ../emotion_critic/)")
    parser.add_argument("--negative-emotion", default="opposite-valence", metavar="POLICY", help=POLICY_HELP)
    parser.add_argument("--critic", metavar="FILE", help="emotion critic for --negative-emotion most-confused")
    parser.add_argument("--confusion-images", metavar="DIR",
                        help="images the critic's confusion is measured on (default: the folder the bank was built "
                        "from, as its metadata records)")
    parser.add_argument("--top-k", type=positive_int, default=1,
                        help="bank clusters retrieved per branch (default 1: the nearest cluster's centre, shared by "
                        "every pair that retrieves it); more are similarity-weighted into one prompt per pair, which "
                        "costs memory per pair at EmoSet scale (1.3 MB a branch for a ViT-H plus bank)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="train",
                        help="EmoSet-118K split list to read (default train)")
    parser.add_argument("--strict", action="store_true",
                        help="EmoSet: a missing annotation file is an error (default: caption from the file name, "
                        "counted)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each pair's caption and the emotion/clusters of both visual prompts, then stop "
                        "(no diffusion model needed)")


def bank_text_encoder_path(args: argparse.Namespace, name: str) -> Path:
    if args.bank_clip:
        path = Path(args.bank_clip)
        if not path.is_file():
            raise InvalidInputError(f"--bank-clip file not found: {path}")
        return path
    bank_dir = Path(args.bank).parent
    for candidate in (bank_dir / name, bank_dir.parent / "emotion_critic" / name):
        if candidate.is_file():
            return candidate
    raise InvalidInputError(f"the bank's text features come from the open_clip file {name!r}, not found next to the "
                            f"bank or in {bank_dir.parent / 'emotion_critic'}; pass it with --bank-clip FILE")


def _confusion(args: argparse.Namespace, bank) -> dict[str, str]:
    from ..bank.confusion import most_confused
    from ..critics import load_critic

    if not args.critic:
        raise InvalidInputError("--negative-emotion most-confused needs --critic FILE")
    if not Path(args.critic).is_file():
        raise InvalidInputError(f"--critic file not found: {args.critic}")
    folder = args.confusion_images or bank.metadata.get("source_path")
    if not folder or not Path(folder).is_dir():
        raise InvalidInputError("--negative-emotion most-confused measures the critic on the bank's images: the bank "
                                f"does not record an existing source folder ({folder!r}); pass --confusion-images DIR")
    split = args.split if args.confusion_images else bank.metadata.get("split")
    return most_confused(load_critic(args.critic), folder, bank.emotions, CONFUSION_SAMPLES, split=split)


def open_picker(args: argparse.Namespace):
    """The bank retrieval for pairs without recorded visual prompts, or None without ``--bank``."""
    from ..training.bank_prompts import MOST_CONFUSED, parse_policy

    policy = parse_policy(args.negative_emotion)
    if not args.bank:
        return None
    if not Path(args.bank).is_file():
        raise InvalidInputError(f"--bank file not found: {args.bank}")
    from ..bank import load_bank
    from ..bank.feature_encoders import load_text_encoder
    from ..training.bank_prompts import BankPromptPicker

    bank = load_bank(args.bank)
    encode = load_text_encoder(bank_text_encoder_path(args, bank.text_encoder_file))
    bank.check_text_encoder(encode)
    confusion = _confusion(args, bank) if policy == MOST_CONFUSED else None
    return BankPromptPicker(bank, encode, policy, top_k=args.top_k, confusion=confusion)


def read_pairs(args: argparse.Namespace):
    from ..preference import read_dataset

    return read_dataset(args.data, split=args.split, strict=args.strict)


def _check_bank_needed(pairs, picker) -> None:
    from ..training.data import needs_bank

    lacking = sum(needs_bank(p) for p in pairs)
    if lacking and picker is None:
        raise InvalidInputError(f"{lacking} of {len(pairs)} pairs have no recorded visual prompts (EmoPair and EmoSet "
                                "pairs never do); pass --bank BANK to retrieve both visual prompts from a prompt bank "
                                "by each pair's caption")


def load_examples(args: argparse.Namespace, cross_dim: int, layout=None) -> tuple[list, list[tuple[str, str]]]:
    """(examples, skipped (where, why)): every usable pair with its two visual sources. With
    ``layout`` (the adapter's ``AdapterLayout``) the bank must be built for that adapter."""
    from ..training.data import prepare_examples

    dataset = read_pairs(args)
    picker = open_picker(args)
    _check_bank_needed(dataset.pairs, picker)
    if picker is not None and layout is not None:
        from ..bank.retrieval import check_bank_fits_layout

        check_bank_fits_layout(picker.bank, layout)
    examples, unusable = prepare_examples(dataset.pairs, cross_dim, picker)
    for pair_id, why in unusable:
        log.warning("skipped pair %s: %s", pair_id, why)
    log.info("%d pairs (%s layout), %d skipped", len(examples), dataset.layout, len(dataset.skipped) + len(unusable))
    return examples, [*dataset.skipped, *unusable]


def dry_run(args: argparse.Namespace) -> dict:
    """Per-pair provenance: caption, chosen/rejected files, each branch's emotion and bank clusters."""
    from ..training.data import prepare_examples

    dataset = read_pairs(args)
    picker = open_picker(args)
    _check_bank_needed(dataset.pairs, picker)
    examples, unusable = prepare_examples(dataset.pairs, None, picker)  # None: token files of any width
    examples_provenance = [dict(e.provenance) for e in examples]
    skipped = [*dataset.skipped, *unusable]
    return {"dry_run": True, "data": str(args.data), "dataset_layout": dataset.layout,
            "bank": str(args.bank) if args.bank else None, "negative_emotion": args.negative_emotion,
            "pairs": examples_provenance, "count": len(examples_provenance), "skipped": len(skipped),
            "skipped_rows": [{"where": w, "why": y} for w, y in skipped[:100]]}
