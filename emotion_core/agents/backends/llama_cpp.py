"""LLM agents on a local GGUF model, through llama.cpp's own OpenAI-compatible
server (``llama-cpp-python[server]``) started on loopback.

A separate server process rather than an in-process ``Llama``: a model that
crashes or hangs cannot take ComfyUI down with it, the agents' concurrency and
deadline logic is the same as for any endpoint, and one server per model file
is reused for the life of the process (stopped at exit).
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ...errors import InvalidInputError
from ..personas import Persona
from ..proposals import AgentChain, AgentRequest, Critique
from .errors import BackendUnavailable
from .openai_compatible import DEFAULT_RETRIES, OpenAICompatibleBackend

log = logging.getLogger(__name__)

NAME = "llama-cpp"
START_TIMEOUT = 120.0
# Extra llama_cpp.server options, e.g. "--n_batch 1" for llama.cpp builds whose batched CPU kernels crash
# (seen with llama-cpp-python 0.3.36 built on an AVX-512/AMX machine: every prompt of more than one token segfaults).
SERVER_ARGS_ENV = "EMOTION_DIRECTOR_LLAMA_SERVER_ARGS"


def server_args() -> tuple[str, ...]:
    return tuple(shlex.split(os.environ.get(SERVER_ARGS_ENV, "")))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    def __init__(self, model_path: Path, start_timeout: float, extra: tuple[str, ...] = ()):
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_file = tempfile.NamedTemporaryFile(prefix="emotion-director-llama-", suffix=".log", delete=False)
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", *extra]
        log.info("starting llama.cpp server for %s on 127.0.0.1:%d", model_path.name, self.port)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                        stderr=subprocess.STDOUT)
        self._wait_ready(start_timeout)

    def _log_tail(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")[-600:]

    def _wait_ready(self, start_timeout: float) -> None:
        deadline = time.monotonic() + start_timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendUnavailable(f"llama.cpp server exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                with opener.open(f"{self.base_url}/models", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise BackendUnavailable(f"llama.cpp server did not start within {start_timeout:g} s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log_file.close()


_servers: dict[tuple[Path, tuple[str, ...]], _Server] = {}
_servers_lock = threading.Lock()


def _server_for(model_path: Path, start_timeout: float) -> _Server:
    """The running server for this model file and options; a new one when there is none or it died."""
    key = (model_path, server_args())
    with _servers_lock:
        server = _servers.get(key)
        if server is None or not server.alive():
            server = _servers[key] = _Server(model_path, start_timeout, key[1])
        return server


@atexit.register
def stop_servers() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


class LlamaCppBackend:
    name = NAME

    def __init__(self, model_path: str, timeout: float = 30.0, retries: int = DEFAULT_RETRIES,
                 start_timeout: float = START_TIMEOUT):
        path = Path(model_path or "").expanduser()
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise InvalidInputError(f"llama-cpp backend needs the path of a .gguf model file, got {model_path!r}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise InvalidInputError("llama-cpp backend needs llama-cpp-python: pip install 'llama-cpp-python[server]'")
        self.model_path = path.resolve()
        self.timeout = timeout
        self.retries = retries
        self.start_timeout = start_timeout

    def _client(self) -> OpenAICompatibleBackend:
        server = _server_for(self.model_path, self.start_timeout)
        # llama.cpp turns each round's schema into a grammar: even a small model then answers in the asked shape
        return OpenAICompatibleBackend(server.base_url, self.model_path.stem, self.timeout, self.retries,
                                       send_schema=True)

    def propose_all(self, personas: tuple[Persona, ...], request: AgentRequest) -> list[AgentChain]:
        chains = self._client().propose_all(personas, request)
        for chain in chains:
            chain.backend = NAME
        return chains

    def critique_all(self, personas: tuple[Persona, ...], request: AgentRequest,
                     chains: list[AgentChain]) -> list[Critique]:
        critiques = self._client().critique_all(personas, request, chains)
        for critique in critiques:
            critique.backend = NAME
        return critiques
