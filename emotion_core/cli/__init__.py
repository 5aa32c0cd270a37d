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
COMMAND_MODULES = ("rewrite", "score", "direction", "generate", "edit", "bank", "train_dpo", "convert", "bench", "dev")

log = logging.getLogger("emotion_director")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as bad input (exit 2) in one line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise InvalidInputError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emotion-director", description="Emotion-oriented image generation and editing.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout, one object per line")


def main(argv: Sequence[str] | None = None) -> int:
    from .output import emit

    try:
        args = build_parser().parse_args(argv)
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
