"""LLM agents behind any OpenAI-style chat endpoint (Ollama, llama.cpp server,
vLLM, hosted APIs).

All agents ask at once, each in a daemon thread, and the whole stage has one
deadline: an agent that has not answered by then is reported as timed out
and the pipeline falls back to the builtin agent for it, so a slow or dead
endpoint never holds up the graph (and a stuck socket never blocks exit).
The API key comes only from the environment, never from a node widget, and is
never logged or put in the transcript.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from urllib.parse import urlsplit

from ...errors import InvalidInputError
from ..personas import Persona
from ..proposals import AgentRequest, AgentResult
from .http_client import EndpointError, post_json
from .llm_protocol import AgentAnswerError, messages, parse_answer

log = logging.getLogger(__name__)

NAME = "openai-compatible"
API_KEY_ENV = ("EMOTION_DIRECTOR_LLM_API_KEY", "OPENAI_API_KEY")
DEFAULT_RETRIES = 2
BACKOFF_SECONDS = 0.25


def api_key_from_env() -> str | None:
    return next((os.environ[name] for name in API_KEY_ENV if os.environ.get(name)), None)


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL given as to OpenAI clients (e.g. ``http://host:11434/v1``)."""
    url = (base_url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never echo it: the part before '@' is a credential
        raise InvalidInputError("LLM base URL must not carry a user name or key (it would be saved in the workflow "
                                f"and image metadata); put the key in {API_KEY_ENV[0]} or {API_KEY_ENV[1]} instead")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"LLM base URL must be an http(s) URL such as http://127.0.0.1:11434/v1, got {base_url!r}")
    if url.endswith("/chat/completions"):
        return url
    if not parts.path:
        url += "/v1"
    return url + "/chat/completions"


class OpenAICompatibleBackend:
    name = NAME

    def __init__(self, base_url: str, model: str, timeout: float = 30.0, retries: int = DEFAULT_RETRIES,
                 temperature: float = 0.7, response_format: dict | None = None):
        if not model or not model.strip():
            raise InvalidInputError("the openai-compatible backend needs a model name (as the server lists it)")
        if not timeout > 0:
            raise InvalidInputError(f"LLM timeout must be positive seconds, got {timeout!r}")
        self.url = chat_url(base_url)
        self.model = model.strip()
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.temperature = temperature
        self.response_format = response_format or {"type": "json_object"}

    def _headers(self) -> dict[str, str]:
        key = api_key_from_env()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _payload(self, persona: Persona, request: AgentRequest, extras: bool) -> dict:
        payload = {"model": self.model, "messages": messages(persona, request), "temperature": self.temperature,
                   "max_tokens": 600}
        if extras:  # JSON mode and seed: widely supported, but not by every server
            payload.update(response_format=self.response_format, seed=request.seed)
        return payload

    def ask(self, persona: Persona, request: AgentRequest, deadline: float) -> AgentResult:
        """One agent's proposals, with bounded retries; an ``AgentResult`` with ``error`` when it fails."""
        start = time.monotonic()
        extras = True
        error = "no attempt made"
        attempt = 0
        while attempt <= self.retries:
            if attempt and time.monotonic() >= deadline:
                break  # out of time: the last real failure stays the reason given
            try:
                answer = post_json(self.url, self._payload(persona, request, extras), self._headers(), deadline)
                content = answer["choices"][0]["message"]["content"]
                proposals = parse_answer(content)
                return AgentResult(persona.key, NAME, proposals, seconds=time.monotonic() - start)
            except EndpointError as exc:
                error = str(exc)
                if exc.status == 400 and extras:
                    extras = False  # some servers reject response_format or seed: ask again without them, free
                    continue
                if not exc.retryable:
                    break
            except (KeyError, IndexError, TypeError):
                error = "answer is not a chat completion (no choices[0].message.content)"
            except AgentAnswerError as exc:
                error = str(exc)
                if not exc.retryable:
                    break
            log.debug("agent %s attempt %d failed: %s", persona.key, attempt + 1, error)
            attempt += 1
            if attempt <= self.retries:
                time.sleep(min(BACKOFF_SECONDS * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
        return AgentResult(persona.key, NAME, [], seconds=time.monotonic() - start, error=error)

    def propose_all(self, personas: tuple[Persona, ...], request: AgentRequest) -> list[AgentResult]:
        deadline = time.monotonic() + self.timeout
        results: dict[str, AgentResult] = {}

        def run(persona: Persona) -> None:
            results[persona.key] = self.ask(persona, request, deadline)

        threads = [threading.Thread(target=run, args=(p,), name=f"agent-{p.key}", daemon=True) for p in personas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        return [results.get(p.key) or AgentResult(p.key, NAME, [], seconds=self.timeout,
                                                  error=f"no answer within {self.timeout:g} s")
                for p in personas]
