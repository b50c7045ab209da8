"""The local store's HTTP side: the Application Insights ingestion endpoint (``POST /v2.1/track``
and ``/v2/track``, a JSON array or newline-delimited envelopes, plain or gzip) that the real
exporter sends to, served so that nothing is left running when it stops."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargeback.local.store import LocalStore

__all__ = ["IngestionHandler", "IngestionServer", "envelopes_of"]


class IngestionServer(ThreadingHTTPServer):
    """A threaded HTTP server whose request threads have all ended when `server_close` returns.

    `ThreadingHTTPServer` runs requests in daemon threads, which nobody waits for. One still
    inside DuckDB when Python exits is ended by ``pthread_exit`` as it takes the GIL back (Python
    C API, PyEval_RestoreThread: "Calling this function from a thread when the runtime is
    finalizing will terminate the thread"), and that forced unwind through DuckDB's C++ aborts
    the process: "terminate called without an active exception" or "FATAL: exception not
    rethrown" (pybind/pybind11#2215 describes the same crash). So requests run in ordinary
    threads, which socketserver joins in `server_close`.
    """

    daemon_threads = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        #: Called from the serving loop after each request and each poll (every 0.5 s).
        self.on_idle: Callable[[], None] | None = None
        super().__init__(address, handler)

    def service_actions(self) -> None:
        if self.on_idle is not None:
            self.on_idle()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Call after `shutdown`. The thread of a kept-alive connection waits for the client's
        next request, which may never come: ending the reading side lets it finish. A request
        already read is still handled and answered; one not yet read gets no answer, which
        the exporter takes as a failure to retry."""
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # already closed by its thread
                    connection.shutdown(socket.SHUT_RD)
        super().server_close()


class IngestionHandler(BaseHTTPRequestHandler):
    """One request to the endpoint, written into ``target``."""

    target: LocalStore
    protocol_version = "HTTP/1.1"
    # The answer's headers and body go out in two writes: with Nagle's algorithm the second
    # waits for the client's delayed acknowledgement (40 ms on Linux), which capped the store
    # at a few hundred events a second however fast DuckDB wrote them.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        # Read the body first, whatever the answer: unread bytes would wedge a kept-alive
        # connection.
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        # An endpoint given with a trailing slash makes the exporter post to //v2.1/track.
        path = re.sub("/+", "/", self.path.split("?")[0]).rstrip("/")
        if path not in ("/v2.1/track", "/v2/track"):
            self._answer(404, {"error": f"no such endpoint {self.path}"})
            return
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            envelopes = envelopes_of(body)
        except (OSError, ValueError) as exc:
            self._answer(400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [str(exc)]})
            return
        accepted = self.target.ingest(envelopes)
        self._answer(
            200, {"itemsReceived": len(envelopes), "itemsAccepted": accepted, "errors": []}
        )

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return  # quiet: the exporter posts often


def envelopes_of(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8").strip()
    if text.startswith("["):
        value = json.loads(text)
        return [item for item in value if isinstance(item, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]
