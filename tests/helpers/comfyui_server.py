"""A real ComfyUI server for end-to-end tests (needs ``COMFYUI_PATH``).

The server runs from ``COMFYUI_PATH`` but keeps all its state in a temporary
``--base-directory`` (models, custom_nodes, input, output, temp, user and the
database), so the checkout is never written to. The test models (with the SD1.5
checkpoint) are written into its ``models/`` and this repository is linked into
its ``custom_nodes/``, so ComfyUI imports the pack exactly as a user's install.

Tests use the session fixture ``comfyui_server`` (tests/conftest.py): the server is
started once per pytest session, on first use.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Folder name of the pack under custom_nodes/, as a user's git clone would be named.
PACK_DIR_NAME = "emotion_director"
TEST_NODES_DIR_NAME = "emotion_director_test_nodes"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0


class ComfyUIError(RuntimeError):
    """ComfyUI rejected a prompt, failed to run it, or died; the message carries ComfyUI's own text."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_base_dir(base_dir: Path) -> None:
    """Lay out a ComfyUI base directory: test models (EmoEditor's released files converted as the
    README says, too) + this repository as a custom node; input/ starts empty (the pack puts its
    example picture there)."""
    from emotion_core.testing.assets import make_test_models

    start = time.perf_counter()
    make_test_models(base_dir / "models", with_checkpoint=True, with_emoeditor_release=True)
    log.info("test models written in %.1f s", time.perf_counter() - start)
    for name in ("custom_nodes", "input", "output", "temp", "user"):
        (base_dir / name).mkdir(parents=True, exist_ok=True)
    (base_dir / "custom_nodes" / PACK_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    # test-only: the tiny SDXL/Flux/SD3.5 text encoders ComfyUI's loader nodes cannot build (comfy_test_nodes)
    (base_dir / "custom_nodes" / TEST_NODES_DIR_NAME).symlink_to(REPO_ROOT / "tests" / "helpers" / "comfy_test_nodes",
                                                                 target_is_directory=True)


class ComfyUIServer:
    """One ComfyUI process on a free loopback port, with its log kept in ``base_dir``."""

    def __init__(self, comfyui_path: str | os.PathLike, base_dir: str | os.PathLike) -> None:
        self.comfyui_path = Path(comfyui_path)
        self.base_dir = Path(base_dir)
        self.log_path = self.base_dir / "comfyui.log"
        self.port = _free_port()
        self.client_id = uuid.uuid4().hex
        self.started_in: float | None = None
        self._process: subprocess.Popen | None = None

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        main = self.comfyui_path / "main.py"
        if not main.is_file():
            raise ComfyUIError(f"COMFYUI_PATH={self.comfyui_path} has no main.py")
        command = [
            sys.executable, str(main),
            "--cpu", "--disable-auto-launch", "--dont-print-server",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base_dir),
            # The default database lives inside the checkout; keep it in the temp tree.
            "--database-url", f"sqlite:///{self.base_dir / 'user' / 'comfyui.db'}",
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        started = time.perf_counter()
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                command, cwd=self.base_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        log.info("ComfyUI pid %d on port %d, log %s", self._process.pid, self.port, self.log_path)
        try:
            self._wait_until_up(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.perf_counter() - started
        log.info("ComfyUI answered /object_info after %.1f s", self.started_in)

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(self.url("/object_info"), timeout=30) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise ComfyUIError(f"ComfyUI did not answer /object_info within {timeout:.0f} s\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if self._process is None:
            raise ComfyUIError("ComfyUI server was not started")
        code = self._process.poll()
        if code is not None:
            raise ComfyUIError(f"ComfyUI exited with code {code}\n{self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("ComfyUI pid %d ignored SIGTERM for %.0f s; killing it", process.pid, STOP_TIMEOUT)
            process.kill()
            process.wait(STOP_TIMEOUT)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.is_file():
            return "(no server log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "--- ComfyUI log (tail) ---\n" + "\n".join(text[-lines:])

    def log_lines(self, containing: str) -> list[str]:
        """Server log lines that mention ``containing``, e.g. the pack's import errors."""
        if not self.log_path.is_file():
            return []
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if containing in line]

    def _request(self, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        self._check_alive()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url(path), data=data, headers={"Content-Type": "application/json"} if data else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                detail = json.loads(payload)
            except ValueError:
                detail = payload.decode(errors="replace")
            raise ComfyUIError(f"{path}: HTTP {exc.code}: {_describe_rejection(detail)}") from exc
        return json.loads(payload) if payload else None

    def get_json(self, path: str) -> Any:
        return self._request(path)

    def queue_prompt(self, api_prompt: dict[str, Any]) -> str:
        """Queue an API-format prompt; a prompt that fails validation raises with ComfyUI's node errors."""
        reply = self._request("/prompt", {"prompt": api_prompt, "client_id": self.client_id})
        return reply["prompt_id"]

    def wait_for(self, prompt_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """The prompt's /history entry once it finished; raises with the failing node's error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self._request(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    raise ComfyUIError(_describe_execution_error(prompt_id, status))
                return entry
            time.sleep(0.2)
        self._request("/interrupt", {})
        raise ComfyUIError(f"prompt {prompt_id} did not finish within {timeout:.0f} s (interrupted)\n{self.log_tail()}")

    def run(self, api_prompt: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        return self.wait_for(self.queue_prompt(api_prompt), timeout)


def _describe_rejection(detail: Any) -> str:
    """One readable line from /prompt's 400 body: the top error plus every node error."""
    if not isinstance(detail, dict):
        return str(detail)
    parts = []
    error = detail.get("error")
    if isinstance(error, dict):
        parts.append(": ".join(x for x in (error.get("message"), error.get("details")) if x))
    elif error:
        parts.append(str(error))
    for node_id, node in (detail.get("node_errors") or {}).items():
        for err in node.get("errors", []):
            text = ": ".join(x for x in (err.get("message"), err.get("details")) if x)
            parts.append(f"node {node_id} ({node.get('class_type')}): {text}")
    return "; ".join(parts) or json.dumps(detail)


def _describe_execution_error(prompt_id: str, status: dict[str, Any]) -> str:
    for event, data in status.get("messages", []):
        if event == "execution_error":
            return (
                f"prompt {prompt_id} failed in node {data.get('node_id')} ({data.get('node_type')}): "
                f"{data.get('exception_type')}: {data.get('exception_message')}\n"
                + "".join(data.get("traceback") or [])
            )
    return f"prompt {prompt_id} failed: {json.dumps(status.get('messages'))}"
