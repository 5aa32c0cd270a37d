"""``eval generate`` / ``eval edit`` take the options of ``generate`` / ``edit`` as those commands
define them (same names, checks and defaults), minus the ones the protocol sets for each run;
the parser is built from the command's own parser so the two never drift apart."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

from .arguments import positive_int


def _command_parser(name: str) -> argparse.ArgumentParser:
    holder = argparse.ArgumentParser(add_help=False).add_subparsers()
    importlib.import_module(f"{__package__}.{name}").register(holder)
    return holder.choices[name]


def _owned(action: argparse.Action, owned: Sequence[str]) -> bool:
    if isinstance(action, argparse._HelpAction):
        return True
    names = action.option_strings or [action.dest]
    return any(name in owned for name in names)


def protocol_parser(protocols, name: str, owned: Sequence[str], common: Callable) -> argparse.ArgumentParser:
    command = _command_parser(name)
    parser = protocols.add_parser(name, help=f"run the {name} protocol, then score it",
                                  description=f"eval {name}: options after the protocol's own are {name}'s.")
    protocol = parser.add_argument_group(f"{name} protocol")
    if name == "generate":
        protocol.add_argument("--prompts", required=True, metavar="FILE", help="prompts, one per line")
        protocol.add_argument("--emotions", default="all", help="'all' or a comma-separated list (default all)")
        protocol.add_argument("--per-prompt", type=positive_int, default=1,
                              help="images per prompt and emotion, seeds SEED..SEED+N-1 (default 1)")
        protocol.add_argument("--rewrite", action="store_true",
                              help="rewrite each prompt for its emotion first (Agent Prompt Rewriter, builtin agents)")
    else:
        protocol.add_argument("--sources", required=True, metavar="DIR", help="folder of source images to edit")
        protocol.add_argument("--targets", default="all", help="'all' or a comma-separated list of emotions")
    common(parser, critic_required=True)
    for action in command._actions:
        if not _owned(action, (*owned, "--critic", "--out", "--json")):
            parser._add_action(action)
    parser.set_defaults(handler=importlib.import_module(f"{__package__}.eval_protocols").HANDLERS[name])
    return parser
