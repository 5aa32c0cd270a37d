"""A scripted OpenAI-compatible chat server on 127.0.0.1, for the benchmark's
concurrency figure and the backend tests (fixed latency, errors, stalls, bad
answers), so neither needs a real LLM or any network beyond loopback.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from .knowledge import knowledge


@dataclass
class Reply:
    content: str = ""  # the assistant message; wrapped in a chat completion
    status: int = 200
    delay: float = 0.0  # seconds before answering (cut short when the server stops)
    raw: bytes | None = None  # sent as the body instead of a chat completion


def request_data(payload: dict) -> dict:
    """The JSON data the agent sent as its (last) user message."""
    return json.loads(payload["messages"][-1]["content"])


def round_of(payload: dict) -> int:
    """1 for a proposal request, 2 for a critique request (the conversation's second user turn)."""
    return 2 if request_data(payload).get("round") == 2 else 1


def knowledge_answer(payload: dict, latency: float = 0.0) -> Reply:
    """A well-formed answer for either round: graph elements of the target emotion, or votes for the first
    offered proposals."""
    data = request_data(payload)
    if round_of(payload) == 2:
        votes = [{"id": p["id"], "reason": "fits the subject and can be drawn"} for p in data["proposals"][:2]]
        return Reply(json.dumps({"critiques": [], "votes": votes}), delay=latency)
    elements = [e for e in knowledge(data["target_emotion"]).elements if "{" not in e.phrase]
    offset = len(payload["messages"][0]["content"]) % 7  # personas differ by system prompt
    items = [{"concept": e.concept, "family": e.family, "element": e.name, "phrase": e.phrase}
             for e in elements[offset::8][:5]]
    return Reply(json.dumps({"appraisal": "the light and the sky can carry it", "concepts": items}), delay=latency)


class ScriptedChatServer:
    """``with ScriptedChatServer(script) as server: ... server.base_url``; ``server.requests`` records what came in."""

    def __init__(self, script: Callable[[dict], Reply] = knowledge_answer):
        self.script = script
        self.requests: list[tuple[dict, dict[str, str]]] = []
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test and bench output clean
                pass

            def do_GET(self) -> None:
                self._send(200, b'{"object": "list", "data": []}')

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload = json.loads(body)
                outer.requests.append((payload, dict(self.headers)))
                reply = outer.script(payload)
                if reply.delay and outer._stop.wait(reply.delay):
                    return
                if reply.raw is not None:
                    self._send(reply.status, reply.raw)
                    return
                completion = {"object": "chat.completion", "model": payload.get("model", ""),
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": reply.content}}]}
                self._send(reply.status, json.dumps(completion).encode())

            def _send(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to do

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "ScriptedChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
