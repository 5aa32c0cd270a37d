"""``emotion-director bench NAME [--json] [options]``: run one of the
benchmarks listed in ``emotion_core.benchmarks.BENCHMARKS``; an unknown name is
bad input (exit 2) and the message lists the known ones."""

from __future__ import annotations

import importlib

from ..benchmarks import BENCHMARKS
from . import add_json_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="measure quality and speed of a feature",
                                   description="Run a benchmark and print its figures.")
    names = parser.add_subparsers(dest="benchmark", metavar="NAME", parser_class=type(parser),
                                  title=f"benchmarks ({', '.join(BENCHMARKS)})")
    names.required = True
    for name, summary in BENCHMARKS.items():
        module = importlib.import_module(f"...benchmarks.{name.replace('-', '_')}_bench", __name__)
        bench = names.add_parser(name, help=summary, description=module.__doc__)
        add_json_flag(bench)
        module.add_arguments(bench)
        bench.set_defaults(handler=module.run)
