"""An Application Insights ingestion endpoint that misbehaves on purpose, in front of a real
`LocalStore`: it answers 503, 429, 206 (partial success) and answers too late, as scripted,
request by request (no clocks), and keeps every envelope it was sent, so a test can look at
exactly what left the process."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chargeback.local.store import LocalStore, _envelopes, connection_string

#: What the endpoint does with one request: "ok", "503", "429", "206" (accept the first half,
#: a retryable error for the rest), "late" (store it, then answer after the client gave up),
#: "hang" (answer nothing in time, store nothing).
Fault = str


@dataclass
class FaultyIngestion:
    store: LocalStore | None
    #: Request number (from 0) -> what to do with it.
    script: Callable[[int], Fault] = lambda _n: "ok"
    #: How long "late" and "hang" take; longer than the sink's timeout.
    delay: float = 1.0
    requests: list[Fault] = field(default_factory=list)
    #: Every envelope received, as sent (JSON), whatever the answer was.
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    raw_bodies: list[str] = field(default_factory=list)
    #: The Authorization header of every request (None when there was none).
    authorizations: list[str | None] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: bytes, encoding: str) -> tuple[int, dict[str, Any], float]:
        if encoding == "gzip":
            body = gzip.decompress(body)
        envelopes = _envelopes(body)
        with self._lock:
            fault = self.script(len(self.requests))
            self.requests.append(fault)
            self.raw_bodies.append(body.decode("utf-8", "replace"))
            self.envelopes.extend(envelopes)
        accepted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        status, wait = 200, 0.0
        if fault in ("ok", "late"):
            accepted = envelopes
            wait = self.delay if fault == "late" else 0.0
        elif fault == "206":
            half = len(envelopes) // 2
            accepted = envelopes[:half]
            errors = [
                {"index": i, "statusCode": 503, "message": "try again"}
                for i in range(half, len(envelopes))
            ]
            status = 206 if errors else 200
        elif fault == "hang":
            status, wait = 503, self.delay
        else:
            status = int(fault)
        if accepted and self.store is not None:
            self.store.ingest(accepted)
        payload = {
            "itemsReceived": len(envelopes),
            "itemsAccepted": len(accepted),
            "errors": errors,
        }
        return status, payload, wait


@contextmanager
def serve(ingestion: FaultyIngestion, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve on 127.0.0.1 (HTTPS with ``tls``); yields the connection string."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ingestion.authorizations.append(self.headers.get("Authorization"))
            status, payload, wait = ingestion.handle(
                body, self.headers.get("Content-Encoding", "").lower()
            )
            if wait:
                time.sleep(wait)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = int(server.server_address[1])
    try:
        if tls is None:
            yield connection_string(port)
        else:
            yield connection_string(port).replace("http://", "https://")
    finally:
        server.shutdown()
        server.server_close()
