"""An Application Insights ingestion endpoint that misbehaves on purpose, in front of a real
`LocalStore`: it answers 503, 429, 206 (partial success), stores a batch and never answers, or
never answers at all, as scripted, request by request, and keeps every envelope it was sent, so a
test can look at exactly what left the process.

No fault is a race against a clock. An answer that never arrives is either a connection closed
without an answer ("late", "hang": at once, whatever the client's timeout), or a connection held
open until the client closes it ("silent": only the client's own read timeout ends it, and the
endpoint sees that it did). The exporter takes both the same way: azure-core raises
`ServiceResponseError` for a read timeout and for a connection closed before the answer
(azure/core/pipeline/transport/_requests_basic.py), which the exporter's `_transmit` treats as
"the request was sent but the client failed to receive a response (e.g. read timeout)",
retryable (azure/monitor/opentelemetry/exporter/export/_base.py).
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from chargeback.local.ingestion import IngestionServer, envelopes_of
from chargeback.local.store import LocalStore, connection_string

#: What the endpoint does with one request:
#: "ok"                    store it, answer 200;
#: "503", "429", "500"...  answer that status, store nothing;
#: "206"                   store the first half, a retryable error for each of the rest;
#: "late"                  store it, then close the connection without an answer (the answer
#:                         came after the client gave up);
#: "hang"                  store nothing, close the connection without an answer;
#: "silent"                store nothing, answer nothing, and hold the connection until the
#:                         client closes it.
Fault = str

#: Faults after which the client never gets an answer.
UNANSWERED = frozenset({"late", "hang", "silent"})


@dataclass
class FaultyIngestion:
    store: LocalStore | None
    #: Request number (from 0) -> what to do with it.
    script: Callable[[int], Fault] = lambda _n: "ok"
    requests: list[Fault] = field(default_factory=list)
    #: Every envelope received, as sent (JSON), whatever the answer was.
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    raw_bodies: list[str] = field(default_factory=list)
    #: Every envelope the endpoint accepted, in the order it accepted them.
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: Ingestion's clock, for its 48-hour rule: an envelope whose ``time`` is older than this
    #: minus 48 hours is refused ("103: Field 'time' on type 'Envelope' is older than the
    #: allowed min date. Expected: now - 172800000ms", the answer microsoft/ApplicationInsights-
    #: node.js#1466 quotes). None: no such rule.
    now: datetime | None = None
    #: The Authorization header of every request (None when there was none).
    authorizations: list[str | None] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def choose(self, number: int, envelopes: list[dict[str, Any]]) -> tuple[Fault, float]:
        """What to do with request ``number`` (from 0), and how many seconds to take before an
        answer (a slow endpoint; never a race: the client waits 30 s); called under the
        endpoint's lock. Override to decide otherwise."""
        return self.script(number), 0.0

    def handle(self, body: bytes, encoding: str) -> tuple[Fault, int, dict[str, Any], float]:
        """Record one request and store what the script accepts:
        ``(fault, status, payload, seconds before the answer)``."""
        if encoding == "gzip":
            body = gzip.decompress(body)
        envelopes = envelopes_of(body)
        with self._lock:
            fault, wait = self.choose(len(self.requests), envelopes)
            self.requests.append(fault)
            self.raw_bodies.append(body.decode("utf-8", "replace"))
            self.envelopes.extend(envelopes)
        accepted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        status = 200
        if fault in ("ok", "late"):
            accepted, errors = self._within_the_window(envelopes)
            status = 206 if accepted and errors else (400 if errors else 200)
        elif fault == "206":
            half = len(envelopes) // 2
            accepted = envelopes[:half]
            errors = [
                {"index": i, "statusCode": 503, "message": "try again"}
                for i in range(half, len(envelopes))
            ]
            status = 206 if errors else 200
        elif fault not in UNANSWERED:
            status = int(fault)
        if accepted and self.store is not None:
            self.store.ingest(accepted)
        with self._lock:
            self.accepted.extend(accepted)
        payload = {
            "itemsReceived": len(envelopes),
            "itemsAccepted": len(accepted),
            "errors": errors,
        }
        return fault, status, payload, wait

    def _within_the_window(
        self, envelopes: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if self.now is None:
            return envelopes, []
        oldest = self.now - timedelta(hours=48)
        accepted, errors = [], []
        for index, envelope in enumerate(envelopes):
            if datetime.fromisoformat(envelope["time"]) < oldest:
                errors.append({"index": index, "statusCode": 400, "message": TOO_OLD})
            else:
                accepted.append(envelope)
        return accepted, errors


TOO_OLD = (
    "103: Field 'time' on type 'Envelope' is older than the allowed min date."
    " Expected: now - 172800000ms"
)


@contextmanager
def serve(ingestion: FaultyIngestion, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve on 127.0.0.1 (HTTPS with ``tls``); yields the connection string. On leaving, every
    request thread has ended (`IngestionServer`), so none is still writing to the store."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ingestion.authorizations.append(self.headers.get("Authorization"))
            fault, status, payload, wait = ingestion.handle(
                body, self.headers.get("Content-Encoding", "").lower()
            )
            if wait:
                time.sleep(wait)
            if fault in UNANSWERED:
                if fault == "silent":
                    self._wait_until_the_client_closes()
                self.close_connection = True  # closed without a status line
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _wait_until_the_client_closes(self) -> None:
            # The client sends nothing more on this connection: the next read returns only
            # when it closes its end (or when the server closes, see IngestionServer).
            try:
                while self.connection.recv(4096):
                    pass
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = IngestionServer(("127.0.0.1", 0), Handler)
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
        thread.join()
