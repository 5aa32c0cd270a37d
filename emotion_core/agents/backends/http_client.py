"""A small JSON-over-HTTP POST with a hard deadline (standard library only).

Socket timeouts alone do not bound a server that trickles bytes, so the body
is read in chunks against the deadline and capped in size. Loopback addresses
bypass any configured proxy: a local Ollama or llama.cpp server must not be
sent through a corporate proxy.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 1 << 20
LOOPBACK_HOSTS = ("localhost", "127.", "::1", "[::1]")


class EndpointError(RuntimeError):
    """The endpoint could not be reached or answered badly; ``retryable`` says whether to try again."""

    def __init__(self, message: str, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def _opener(url: str) -> urllib.request.OpenerDirector:
    host = urlsplit(url).hostname or ""
    if host.startswith(LOOPBACK_HOSTS):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _read(response, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise EndpointError("timed out while reading the answer", retryable=False)
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            missing = getattr(response, "length", None)
            if missing:  # Content-Length announced more: the server closed the connection mid-body
                raise EndpointError(f"answer cut short after {size} bytes ({missing} more announced)", retryable=True)
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise EndpointError(f"answer larger than {MAX_RESPONSE_BYTES} bytes", retryable=False)
        chunks.append(chunk)


def post_json(url: str, payload: dict, headers: dict[str, str], deadline: float) -> dict:
    """POST ``payload`` and return the JSON answer, or raise ``EndpointError`` before ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise EndpointError("no time left for the request", retryable=False)
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with _opener(url).open(request, timeout=remaining) as response:
            body = _read(response, deadline)
    except urllib.error.HTTPError as exc:
        retryable = exc.code == 429 or exc.code >= 500
        raise EndpointError(f"HTTP {exc.code} from {url}", retryable=retryable, status=exc.code) from None
    except http.client.IncompleteRead as exc:  # e.g. a chunked answer cut mid-stream
        raise EndpointError(f"answer from {url} cut short after {len(exc.partial)} bytes", retryable=True) from None
    except http.client.HTTPException as exc:
        raise EndpointError(f"bad HTTP answer from {url} ({type(exc).__name__})", retryable=True) from None
    except (socket.timeout, TimeoutError):
        raise EndpointError(f"no answer from {url} in time", retryable=True) from None
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"cannot reach {url}: {reason}", retryable=True) from None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EndpointError(f"{url} did not answer with JSON", retryable=True) from None
    except RecursionError:
        raise EndpointError(f"{url} answered with JSON nested too deeply", retryable=False) from None
