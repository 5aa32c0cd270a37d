"""Stand-in for ``comfy.cli_args``: the parsed command line, defaults only."""

from types import SimpleNamespace

args = SimpleNamespace(disable_metadata=False)
