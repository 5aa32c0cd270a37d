"""MC-Agent: multi-agent chain-of-concept prompt rewriting (see ``pipeline``)."""

from .backends import BACKENDS, BackendSettings
from .personas import MAX_AGENTS
from .pipeline import RewriteResult, rewrite

__all__ = ["BACKENDS", "BackendSettings", "MAX_AGENTS", "RewriteResult", "rewrite"]
