"""The local store: an Application Insights–compatible ingestion endpoint on localhost that
writes into DuckDB tables named and shaped like Application Insights' own.

The real exporter sends to it unchanged, through a connection string with
``IngestionEndpoint=http://127.0.0.1:PORT/``; so can a Function under ``func start``. It answers
``POST /v2.1/track`` (and ``/v2/track``) with a JSON array of envelopes or newline-delimited
envelopes, plain or gzip, as the ingestion service does.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["IngestionServer", "LocalStore", "connection_string", "customevents_columns"]

#: A fixed, obviously local instrumentation key: the exporter needs one, the store ignores it.
LOCAL_IKEY = "00000000-0000-0000-0000-000000000000"

# Kusto type -> DuckDB type, for the schema file shared with the Kusto parser tests.
_DUCKDB_TYPES = {
    "datetime": "TIMESTAMP",
    "string": "VARCHAR",
    "dynamic": "JSON",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
}

# Envelope tag -> column. Source: Application Insights data model (ContextTagKeys) and the
# customEvents table reference in Azure Monitor Logs.
_TAG_COLUMNS = {
    "ai.operation.name": "operation_Name",
    "ai.operation.id": "operation_Id",
    "ai.operation.parentId": "operation_ParentId",
    "ai.session.id": "session_Id",
    "ai.user.id": "user_Id",
    "ai.user.authUserId": "user_AuthenticatedId",
    "ai.user.accountId": "user_AccountId",
    "ai.application.ver": "application_Version",
    "ai.device.type": "client_Type",
    "ai.device.model": "client_Model",
    "ai.device.osVersion": "client_OS",
    "ai.location.ip": "client_IP",
    "ai.cloud.role": "cloud_RoleName",
    "ai.cloud.roleInstance": "cloud_RoleInstance",
    "ai.internal.sdkVersion": "sdkVersion",
}


def customevents_columns() -> list[tuple[str, str]]:
    """``[(column, kusto_type)]`` of ``customEvents``, from the schema file the tests share."""
    doc = json.loads(
        resources.files("chargeback").joinpath("data/customEvents.schema.json").read_text()
    )
    return [(column["name"], column["type"]) for column in doc["columns"]]


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return f"InstrumentationKey={LOCAL_IKEY};IngestionEndpoint=http://{host}:{port}/"


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f'"{name}" {_DUCKDB_TYPES[kind]}' for name, kind in customevents_columns())
    con.execute(f"CREATE TABLE IF NOT EXISTS customEvents ({columns})")
    # Every other telemetry type lands here, so a test can prove none was sent.
    con.execute(
        "CREATE TABLE IF NOT EXISTS otherTelemetry "
        "(timestamp TIMESTAMP, envelopeName VARCHAR, baseType VARCHAR, body JSON)"
    )


def _timestamp(value: Any) -> datetime:
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _event_row(envelope: dict[str, Any], columns: list[str]) -> tuple[Any, ...]:
    data = envelope.get("data") or {}
    base = data.get("baseData") or {}
    tags = envelope.get("tags") or {}
    sample_rate = float(envelope.get("sampleRate") or 100.0)
    row: dict[str, Any] = {
        "timestamp": _timestamp(envelope.get("time")),
        "name": base.get("name"),
        "itemType": "customEvent",
        "customDimensions": json.dumps(base.get("properties") or {}),
        "customMeasurements": json.dumps(base.get("measurements") or {}),
        "iKey": envelope.get("iKey"),
        "itemId": str(uuid.uuid4()),
        "itemCount": max(1, round(100.0 / sample_rate)) if sample_rate > 0 else 1,
        "appName": tags.get("ai.cloud.role"),
    }
    for tag, column in _TAG_COLUMNS.items():
        if tag in tags:
            row[column] = tags[tag]
    return tuple(row.get(column) for column in columns)


class LocalStore:
    """A DuckDB file plus the HTTP endpoint that fills it. Use as a context manager."""

    def __init__(self, db_path: Path | str, *, host: str = "127.0.0.1", port: int = 0):
        self.db_path = Path(db_path)
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._server: IngestionServer | None = None
        self._thread: threading.Thread | None = None
        self._columns = [name for name, _ in customevents_columns()]
        self.received = 0
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            _create_tables(con)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, so another process can open the file between writes."""
        con = _open(self.db_path, read_only)
        try:
            yield con
        finally:
            con.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the local store is not serving")
        return int(self._server.server_address[1])

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self._host)

    def ingest(self, envelopes: list[dict[str, Any]]) -> int:
        """Store envelopes; returns how many were accepted."""
        events, others = [], []
        for envelope in envelopes:
            base_type = ((envelope.get("data") or {}).get("baseType")) or ""
            if base_type == "EventData":
                events.append(_event_row(envelope, self._columns))
            else:
                others.append(
                    (
                        _timestamp(envelope.get("time")),
                        envelope.get("name"),
                        base_type,
                        json.dumps(envelope),
                    )
                )
        with self._lock, self.connect() as con:
            if events:
                marks = ", ".join("?" * len(self._columns))
                con.executemany(f"INSERT INTO customEvents VALUES ({marks})", events)
            if others:
                con.executemany("INSERT INTO otherTelemetry VALUES (?, ?, ?, ?)", others)
        self.received += len(envelopes)
        return len(envelopes)

    def start(self) -> LocalStore:
        store = self

        class Handler(_IngestionHandler):
            target = store

        self._server = IngestionServer((self._host, self._port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="chargeback-local-store", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns once no request is being handled (see `IngestionServer`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LocalStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
        super().__init__(address, handler)

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


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    # Another process may hold the file for a moment (the store writes in short bursts).
    for attempt in range(50):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.IOException:
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


class _IngestionHandler(BaseHTTPRequestHandler):
    target: LocalStore
    protocol_version = "HTTP/1.1"

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
            envelopes = _envelopes(body)
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


def _envelopes(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8").strip()
    if text.startswith("["):
        value = json.loads(text)
        return [item for item in value if isinstance(item, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]
