"""Agent backends behind one interface, one method per round:
``propose_all(personas, request) -> [AgentChain]`` and
``critique_all(personas, request, chains) -> [Critique]``.

``builtin`` is offline and deterministic; the LLM backends may fail per agent
and round (``error``) or as a whole (``BackendUnavailable``), and the pipeline
then falls back to ``builtin`` for that agent and round, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidInputError
from .builtin import BuiltinBackend
from .errors import BackendUnavailable

BACKENDS = ("builtin", "openai-compatible", "llama-cpp")
__all__ = ["BACKENDS", "BackendSettings", "BackendUnavailable", "make_backend"]


@dataclass(frozen=True)
class BackendSettings:
    name: str = "builtin"
    base_url: str = ""
    model: str = ""  # model name for openai-compatible; path of a .gguf file for llama-cpp
    timeout: float = 30.0
    retries: int = 2


def make_backend(settings: BackendSettings, context):
    """The backend ``settings`` name; ``context`` (a ``RewriteContext``) is the builtin agents' knowledge."""
    name = (settings.name or "builtin").strip().lower()
    if name == "builtin":
        return BuiltinBackend(context)
    if name == "openai-compatible":
        from .openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(settings.base_url, settings.model, settings.timeout, settings.retries)
    if name == "llama-cpp":
        from .llama_cpp import LlamaCppBackend

        return LlamaCppBackend(settings.model, settings.timeout, settings.retries)
    raise InvalidInputError(f"unknown backend {settings.name!r}; expected one of: {', '.join(BACKENDS)}")
