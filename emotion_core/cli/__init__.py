"""``emotion-director`` command line. Each sub-command lives in its own module
with ``register(subparsers)``; its handler returns a result (or list of results)
that is printed as JSON lines with ``--json`` and as text otherwise.

Exit codes: 0 success, 2 bad input (one-line reason on stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ..errors import InvalidInputError

# Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = ("rewrite", "score", "direction", "generate", "edit", "bank", "train_dpo", "convert", "eval", "bench", "dev")

# What ``emotion-director --help`` lists for each command, so the listing needs no command
# module imported (they pull in torch and friends: seconds). A command run imports its own
# module only. A module missing here is imported to be listed; tests/test_cli_startup.py
# checks this text against the modules' own ``help``.
COMMAND_HELP: dict[str, str] = {
    "rewrite": "rewrite a prompt so it shows an emotion (MC-Agent)",
    "score": "emotion distribution of images under a critic",
    "direction": "emotion direction: target minus the source image's emotions",
    "generate": "generate images for an emotion with an SD1.5-family model (diffusers)",
    "edit": "edit an image toward an emotion (Emotion Critic Loop)",
    "bank": "MC-Diffusion prompt banks",
    "train-dpo": "negative-visual DPO fine-tuning of a visual prompt adapter and/or a UNet LoRA",
    "convert": "rewrite a .pt/.pth/.bin/.ckpt checkpoint as .safetensors with metadata",
    "eval": "the papers' evaluation tables over a dataset, with an HTML report",
    "bench": "measure quality and speed of a feature",
    "dev": "developer helpers",
}

log = logging.getLogger("emotion_director")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as bad input (exit 2) in one line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise InvalidInputError(f"{self.prog}: {message}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``command`` (``""``: none) only that command's module is imported and
    the others are listed by name and ``COMMAND_HELP``."""
    parser = _Parser(prog="emotion-director", description="Emotion-oriented image generation and editing.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in COMMAND_MODULES:
        name = module.replace("_", "-")
        if command is None or command == name or name not in COMMAND_HELP:
            importlib.import_module(f"{__name__}.{module}").register(commands)
        else:
            commands.add_parser(name, help=COMMAND_HELP[name])
    return parser


def chosen_command(argv: Sequence[str]) -> str:
    """The command word of ``argv`` (the first word that is not an option), ``""`` without one."""
    return next((word for word in argv if not word.startswith("-")), "")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout, one object per line")


def main(argv: Sequence[str] | None = None) -> int:
    from .output import emit

    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(chosen_command(argv)).parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        return emit(args.handler(args), as_json=getattr(args, "json", False))
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: report, exit 1
        log.debug("unhandled error", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
