"""LLM agents behind any OpenAI-style chat endpoint (Ollama, llama.cpp server,
vLLM, hosted APIs), in two real rounds.

Round 1: every agent is asked for its chain at once, each in a daemon thread.
Round 2: each agent's conversation continues with its own round-1 answer and
the other agents' proposals; it answers with critiques and votes. Each round
has its own deadline (``timeout``): an agent that has not answered by then is
reported as timed out and the pipeline falls back to the builtin agent for it,
for that round only, so a slow or dead endpoint never holds up the graph (and
a stuck socket never blocks exit). The API key comes only from the
environment, never from a node widget, and is never logged or put in the
transcript.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from ...errors import InvalidInputError
from ..personas import Persona
from ..proposals import AgentChain, AgentRequest, Critique
from .http_client import EndpointError, post_json
from .llm_answers import AgentAnswerError, parse_chain, parse_critique
from .llm_protocol import offered, round1_messages, round1_schema, round2_messages, round2_schema

log = logging.getLogger(__name__)

NAME = "openai-compatible"
API_KEY_ENV = ("EMOTION_DIRECTOR_LLM_API_KEY", "OPENAI_API_KEY")
DEFAULT_RETRIES = 2
BACKOFF_SECONDS = 0.25
MAX_TOKENS = 600


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


class Outcome:
    """One agent's call in one round: the parsed value, or why there is none."""

    def __init__(self, value=None, content: str = "", seconds: float = 0.0, error: str = "",
                 endpoint_failed: bool = False):
        self.value, self.content, self.seconds, self.error = value, content, seconds, error
        self.endpoint_failed = endpoint_failed  # the server, not the answer, failed: round 2 is not asked


class OpenAICompatibleBackend:
    name = NAME

    def __init__(self, base_url: str, model: str, timeout: float = 30.0, retries: int = DEFAULT_RETRIES,
                 temperature: float = 0.7, send_schema: bool = False):
        if not model or not model.strip():
            raise InvalidInputError("the openai-compatible backend needs a model name (as the server lists it)")
        if not timeout > 0:
            raise InvalidInputError(f"LLM timeout must be positive seconds, got {timeout!r}")
        self.url = chat_url(base_url)
        self.model = model.strip()
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.temperature = temperature
        self.send_schema = send_schema  # llama.cpp turns a schema into a grammar: a small model then answers in shape

    def _headers(self) -> dict[str, str]:
        key = api_key_from_env()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _payload(self, messages: list[dict], schema: dict, seed: int, extras: bool) -> dict:
        payload = {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": MAX_TOKENS}
        if extras:  # JSON mode and seed: widely supported, but not by every server
            response_format = {"type": "json_object"}
            if self.send_schema:
                response_format["schema"] = schema
            payload.update(response_format=response_format, seed=seed)
        return payload

    def ask(self, messages: list[dict], schema: dict, parse: Callable[[str], object], seed: int,
            deadline: float) -> Outcome:
        """One call with bounded retries; an ``Outcome`` with ``error`` when it fails."""
        start = time.monotonic()
        extras, error, endpoint_failed, attempt = True, "no attempt made", False, 0
        while attempt <= self.retries:
            if attempt and time.monotonic() >= deadline:
                break  # out of time: the last real failure stays the reason given
            try:
                answer = post_json(self.url, self._payload(messages, schema, seed, extras), self._headers(), deadline)
                content = answer["choices"][0]["message"]["content"]
                return Outcome(parse(content), content, time.monotonic() - start)
            except EndpointError as exc:
                error, endpoint_failed = str(exc), True
                if exc.status == 400 and extras:
                    extras = False  # some servers reject response_format or seed: ask again without them, free
                    continue
                if not exc.retryable:
                    break
            except (KeyError, IndexError, TypeError):
                error, endpoint_failed = "answer is not a chat completion (no choices[0].message.content)", False
            except AgentAnswerError as exc:
                error, endpoint_failed = str(exc), False
            log.debug("attempt %d failed: %s", attempt + 1, error)
            attempt += 1
            if attempt <= self.retries:
                time.sleep(min(BACKOFF_SECONDS * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
        return Outcome(seconds=time.monotonic() - start, error=error, endpoint_failed=endpoint_failed)

    def _all(self, personas: tuple[Persona, ...], call: Callable[[Persona, float], Outcome]) -> list[Outcome]:
        deadline = time.monotonic() + self.timeout
        results: dict[str, Outcome] = {}

        def run(persona: Persona) -> None:
            results[persona.key] = call(persona, deadline)

        threads = [threading.Thread(target=run, args=(p,), name=f"agent-{p.key}", daemon=True) for p in personas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        return [results.get(p.key) or Outcome(seconds=self.timeout, error=f"no answer within {self.timeout:g} s",
                                              endpoint_failed=True) for p in personas]

    def propose_all(self, personas: tuple[Persona, ...], request: AgentRequest) -> list[AgentChain]:
        """Round 1: every agent's chain; a chain with ``error`` (and ``endpoint_failed``) when it failed."""
        schema = round1_schema(request)

        def call(persona: Persona, deadline: float) -> Outcome:
            return self.ask(round1_messages(persona, request), schema, lambda c: parse_chain(c, persona.key),
                            request.seed, deadline)

        chains = []
        for persona, outcome in zip(personas, self._all(personas, call)):
            if outcome.error:
                chain = AgentChain(persona.key, NAME, {}, [], outcome.seconds, outcome.error,
                                   endpoint_failed=outcome.endpoint_failed)
            else:
                appraisal, proposals, notes, answer = outcome.value
                chain = AgentChain(persona.key, NAME, {"note": appraisal}, proposals, outcome.seconds, notes=notes,
                                   answer=answer)
            chains.append(chain)
        return chains

    def critique_all(self, personas: tuple[Persona, ...], request: AgentRequest,
                     chains: list[AgentChain]) -> list[Critique]:
        """Round 2 for the agents whose round 1 came from this backend (others are not asked)."""
        own = {c.agent: c for c in chains}

        def call(persona: Persona, deadline: float) -> Outcome:
            ids = [p["id"] for p in offered(chains, persona.key)]
            if not ids:
                return Outcome(([], [], []))
            return self.ask(round2_messages(persona, request, own[persona.key], chains),
                            round2_schema(ids, request.votes_per_agent),
                            lambda c: parse_critique(c, persona.key, ids), request.seed, deadline)

        critiques = []
        for persona, outcome in zip(personas, self._all(personas, call)):
            if outcome.error:
                critiques.append(Critique(persona.key, NAME, [], seconds=outcome.seconds, error=outcome.error))
            else:
                votes, scores, notes = outcome.value
                critiques.append(Critique(persona.key, NAME, votes, scores=scores, seconds=outcome.seconds, notes=notes))
        return critiques
