"""The ingestion endpoints the benchmark delivers to, each in a process of its own so that its
work is not counted as the Function's:

- ``accept``: parses each request as Application Insights' ingestion would read it (gzip when
  the request says so, a JSON array of envelopes) and accepts every envelope: ``200`` with
  ``itemsReceived`` and ``itemsAccepted``, the answer the exporter reads as success;
- ``store``: the local store (`chargeback.local.store.LocalStore`), which writes every event
  into DuckDB as well.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["serve_endpoint"]


class _Accepting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the ingestion service
    # Headers and body go out in two writes: without this the second waits for the client's
    # delayed acknowledgement (40 ms on Linux), which would only slow the wall clock.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        envelopes = json.loads(body)
        count = len(envelopes) if isinstance(envelopes, list) else 0
        answer = json.dumps({"itemsReceived": count, "itemsAccepted": count, "errors": []})
        data = answer.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return


def endpoint_child(kind: str, folder: str) -> None:
    """In the endpoint's own process: serve until standard input closes; the port goes to
    standard output first."""
    if kind == "store":
        from chargeback.local.store import LocalStore

        with LocalStore(Path(folder) / "bench.duckdb") as store:
            _announce(store.port)
            sys.stdin.read()
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    server.daemon_threads = True

    threading.Thread(target=server.serve_forever, daemon=True).start()
    _announce(int(server.server_address[1]))
    sys.stdin.read()
    server.shutdown()


def _announce(port: int) -> None:
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


_CHILD = (
    "import sys\n"
    "from chargeback.tools.bench.endpoint import endpoint_child\n"
    "endpoint_child(sys.argv[1], sys.argv[2])\n"
)


@contextmanager
def serve_endpoint(kind: str, env: dict[str, str]) -> Iterator[str]:
    """An ingestion endpoint (``accept`` or ``store``) in a child process; yields its
    connection string. The child ends when this context does."""
    from chargeback.local.store import connection_string

    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, kind, folder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert child.stdout is not None
            port = int(child.stdout.readline())
            yield connection_string(port)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
