"""LLM endpoint faults for the openai-compatible agents, against tiny servers on 127.0.0.1:
a refused connection, a server that accepts and never answers, HTTP 500, a body cut
short after the headers, a chunked answer cut mid-stream and a 200 that is not JSON.
The core ``rewrite`` and the Agent Prompt Rewriter node both return in bounded time
with a warning naming the failure and the builtin agents' result. Plus concurrent
rewrites against one server: all finish, equal the one-at-a-time results, leak no threads.

Time limits here are generous "does not hang" bounds, not performance figures.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from emotion_core.agents import BackendSettings, rewrite
from emotion_core.agents.loopback_server import Reply, ScriptedChatServer, knowledge_answer

TRANSCRIPT_JSON_MARK = "--- transcript JSON ---"  # nodes/agent_rewriter.py: the readable tree, then the JSON

PROMPT, EMOTION, AGENTS = "a lighthouse on a cliff", "awe", 2
TIMEOUT = 1.0  # the stage's deadline; every case must end well within HANG_LIMIT
HANG_LIMIT = 10.0
COMPLETION = json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": json.dumps({"concepts": [
        {"family": "lighting", "concept": "god rays", "phrase": "god rays through parting clouds"},
        {"family": "scene", "concept": "vast horizon", "phrase": "a vast horizon under a towering sky"}]})}}]})


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (headers + Content-Length body) so the client is not reset early."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``respond(conn)`` (raw bytes,
    then closes), or accepts and stalls when ``respond`` is None, until the server stops."""

    def __init__(self, respond):
        stop = self.stop = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if respond is None:
                    stop.wait(30)  # accepted, never read, never answered
                    return
                _read_request(self.request)
                try:
                    respond(self.request)
                except OSError:
                    pass  # the client gave up

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


def _cut_body(conn: socket.socket) -> None:
    body = COMPLETION.encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body[: len(body) // 2])


def _cut_stream(conn: socket.socket) -> None:
    body = COMPLETION.encode()[:40]
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + f"{len(body):x}\r\n".encode() + body + b"\r\n" + b"100\r\n" + b"partial")


class _Refused:
    """A port nothing listens on."""

    def __enter__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        return self

    def __exit__(self, *exc) -> None:
        pass


# name -> (server factory, words the warning must contain)
FAULTS = {
    "refused": (_Refused, "cannot reach"),
    "accepts_and_stalls": (lambda: RawServer(None), "in time"),
    "http_500": (lambda: ScriptedChatServer(lambda payload: Reply(status=500)), "HTTP 500"),
    "body_cut_after_headers": (lambda: RawServer(_cut_body), "cut"),
    "chunked_stream_cut": (lambda: RawServer(_cut_stream), "cut"),
    "200_not_json": (lambda: ScriptedChatServer(lambda payload: Reply(raw=b"<html>Bad gateway</html>")), "with JSON"),
}


def _settings(base_url: str) -> BackendSettings:
    return BackendSettings("openai-compatible", base_url, "scripted-model", timeout=TIMEOUT, retries=1)


@pytest.fixture(scope="module")
def builtin_result():
    return rewrite(PROMPT, EMOTION, agents=AGENTS, use_encoder=False)


@pytest.fixture
def no_thread_errors(monkeypatch):
    """Exceptions that escape an agent thread (instead of becoming its warning) fail the test."""
    escaped = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    yield escaped
    assert not escaped, f"an agent thread died with {escaped[0]!r}"


@pytest.mark.parametrize("fault", list(FAULTS))
def test_core_rewrite_falls_back_with_a_warning(fault, builtin_result, no_thread_errors):
    make, words = FAULTS[fault]
    with make() as server:
        start = time.monotonic()
        result = rewrite(PROMPT, EMOTION, agents=AGENTS, backend=_settings(server.base_url), use_encoder=False)
        elapsed = time.monotonic() - start
    assert elapsed < HANG_LIMIT
    assert len(result.warnings) == AGENTS
    assert all(words in w and "builtin" in w for w in result.warnings), result.warnings
    assert all(a["backend"] == a["round2"]["backend"] == "builtin (fallback)" for a in result.chain)
    # the builtin agents' concepts: the same rewrite as the offline backend gives
    assert (result.rewrite, result.negative) == (builtin_result.rewrite, builtin_result.negative)


@pytest.fixture(scope="module")
def node(pack):
    from emotion_director_pack.nodes.agent_rewriter import AgentPromptRewriter

    return AgentPromptRewriter


@pytest.fixture
def offline_node_result(node, monkeypatch):
    from emotion_core.agents import rewrite_flow

    monkeypatch.setattr(rewrite_flow, "get_encoder", lambda: None)  # no sentence encoder: fast and the same both ways
    inputs = dict(prompt=PROMPT, emotion=EMOTION, agents=AGENTS, creativity=0.5, seed=3, backend="builtin",
                  base_url="http://127.0.0.1:9/v1", model="", timeout=TIMEOUT, token_budget=77)
    return inputs, node.execute(**inputs).args


@pytest.mark.parametrize("fault", list(FAULTS))
def test_node_falls_back_with_a_warning(fault, node, offline_node_result, no_thread_errors):
    make, words = FAULTS[fault]
    inputs, offline = offline_node_result
    with make() as server:
        start = time.monotonic()
        out = node.execute(**{**inputs, "backend": "openai-compatible", "base_url": server.base_url,
                              "model": "scripted-model"})
        elapsed = time.monotonic() - start
    assert elapsed < HANG_LIMIT
    rewritten, negative, transcript = out.args
    assert (rewritten, negative) == offline[:2]
    shown = [line for line in out.ui["text"] if line.startswith("warning: ")]
    assert len(shown) == AGENTS and all(words in line for line in shown), shown
    readable, data = transcript.split(TRANSCRIPT_JSON_MARK)
    assert json.loads(data)["warnings"] == [line[len("warning: "):] for line in shown]
    assert all(f"  {line}" in readable for line in shown)


def _settle_threads(baseline: int, limit: float = 5.0) -> int:
    deadline = time.monotonic() + limit
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()


def _timeless(transcript: dict) -> dict:
    """The transcript without the agents' wall-clock seconds (the only part allowed to differ)."""
    def strip(record: dict) -> dict:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in record.items() if k != "seconds"}

    return {**transcript, "chain": [strip(a) for a in transcript["chain"]]}


def test_concurrent_rewrites_match_sequential_ones_and_leak_no_threads():
    requests, agents = 16, 3
    baseline = threading.active_count()
    with ScriptedChatServer(lambda payload: knowledge_answer(payload, latency=0.05)) as server:
        settings = BackendSettings("openai-compatible", server.base_url, "scripted-model", timeout=HANG_LIMIT)

        def one(seed: int):
            return rewrite(PROMPT, EMOTION, agents=agents, seed=seed, creativity=1.0, backend=settings,
                           use_encoder=False)

        sequential = [one(seed) for seed in range(requests)]
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=requests) as pool:
            concurrent = list(pool.map(one, range(requests)))
        assert time.monotonic() - start < 4 * HANG_LIMIT
        served = len(server.requests)
    assert served == 2 * 2 * requests * agents  # sequential + concurrent, every agent asked in both rounds
    assert all(r.warnings == [] for r in sequential + concurrent)
    assert [r.as_record() for r in concurrent] == [r.as_record() for r in sequential]
    assert [_timeless(r.transcript) for r in concurrent] == [_timeless(r.transcript) for r in sequential]
    assert len({r.rewrite for r in sequential}) > 1  # seeds matter, so equality is not trivial
    assert _settle_threads(baseline) == baseline
