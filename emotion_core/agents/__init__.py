"""MC-Agent: multi-agent chain-of-concept prompt rewriting (see ``rewrite_flow``)."""

from .backends import BACKENDS, BackendSettings
from .personas import MAX_AGENTS
from .rewrite_flow import RewriteResult, rewrite

__all__ = ["BACKENDS", "BackendSettings", "MAX_AGENTS", "RewriteResult", "rewrite"]
