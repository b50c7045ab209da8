"""The local store: an Application Insights–compatible ingestion endpoint on localhost that
writes into DuckDB tables named and shaped like Application Insights' own.

Each event lands twice, as a workspace-based Application Insights resource keeps it: in
``customEvents`` (the Application Insights names) and in ``AppEvents`` (the Log Analytics
workspace's names), with the same item id (``itemId`` / ``_ItemId``) and time. The column mapping
is Microsoft's, "Migrate to workspace-based Application Insights resources", AppEvents section
(learn.microsoft.com/azure/azure-monitor/app/convert-classic-resource): customDimensions ->
Properties, customMeasurements -> Measurements, timestamp -> TimeGenerated, itemCount -> ItemCount,
cloud_RoleName -> AppRoleName ...; ``_ItemId`` and ``_ResourceId`` are the workspace's standard
columns (learn.microsoft.com/azure/azure-monitor/logs/log-standard-columns).

Given a ``received_at`` clock, the store applies the workspace's time rule (same page,
TimeGenerated): "The TimeGenerated value cannot be older than 2 days before received time or more
than a day in the future. If [...] the value is older than 2 days or more than a day in the
future, it would be replaced with the actual received time." A workspace-based resource serves
``customEvents.timestamp`` from that same TimeGenerated. Without a clock (the default) times are
kept as sent.

The real exporter sends to it unchanged, through a connection string with
``IngestionEndpoint=http://127.0.0.1:PORT/``; so can a Function under ``func start``. It answers
``POST /v2.1/track`` (and ``/v2/track``) with a JSON array of envelopes or newline-delimited
envelopes, plain or gzip, as the ingestion service does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from chargeback.local.ingestion import IngestionHandler, IngestionServer

__all__ = [
    "LOCAL_RESOURCE_ID",
    "LocalStore",
    "appevents_columns",
    "connection_string",
    "customevents_columns",
]

#: A fixed, obviously local instrumentation key: the exporter needs one, the store ignores it.
LOCAL_IKEY = "00000000-0000-0000-0000-000000000000"
#: The Application Insights resource the local store stands for (AppEvents._ResourceId).
LOCAL_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local"
    "/providers/microsoft.insights/components/chargeback-local"
)
# The workspace's TimeGenerated rule (log-standard-columns): older than this before the received
# time, or further ahead of it, and the time becomes the received time.
_MAX_AGE = timedelta(days=2)
_MAX_AHEAD = timedelta(days=1)
#: How long the store keeps its file open after the last write (see `_release_if_idle`).
IDLE_SECONDS = 0.2

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


# customEvents column -> AppEvents column, for the columns the envelope fills (the migration
# page's AppEvents table; itemId is "removed" there and the standard column _ItemId holds it).
_APPEVENTS_COLUMNS = {
    "timestamp": "TimeGenerated",
    "name": "Name",
    "customDimensions": "Properties",
    "customMeasurements": "Measurements",
    "operation_Name": "OperationName",
    "operation_Id": "OperationId",
    "operation_ParentId": "ParentId",
    "session_Id": "SessionId",
    "user_Id": "UserId",
    "user_AuthenticatedId": "UserAuthenticatedId",
    "user_AccountId": "UserAccountId",
    "application_Version": "AppVersion",
    "client_Type": "ClientType",
    "client_Model": "ClientModel",
    "client_OS": "ClientOS",
    "client_IP": "ClientIP",
    "cloud_RoleName": "AppRoleName",
    "cloud_RoleInstance": "AppRoleInstance",
    "iKey": "IKey",
    "sdkVersion": "SDKVersion",
    "itemCount": "ItemCount",
    "itemId": "_ItemId",
}


@cache
def _schema(name: str) -> tuple[tuple[str, str], ...]:
    doc = json.loads(resources.files("chargeback").joinpath(f"data/{name}").read_text())
    return tuple((column["name"], column["type"]) for column in doc["columns"])


def _schema_columns(name: str) -> list[tuple[str, str]]:
    return list(_schema(name))


def customevents_columns() -> list[tuple[str, str]]:
    """``[(column, kusto_type)]`` of ``customEvents``, from the schema file the tests share."""
    return _schema_columns("customEvents.schema.json")


def appevents_columns() -> list[tuple[str, str]]:
    """``[(column, kusto_type)]`` of the workspace's ``AppEvents``, from its schema file."""
    return _schema_columns("AppEvents.schema.json")


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return f"InstrumentationKey={LOCAL_IKEY};IngestionEndpoint=http://{host}:{port}/"


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table, columns in (
        ("customEvents", customevents_columns()),
        ("AppEvents", appevents_columns()),
    ):
        spec = ", ".join(f'"{name}" {_DUCKDB_TYPES[kind]}' for name, kind in columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")
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


def _time_generated(sent: datetime, received: datetime | None) -> datetime:
    """The stored time: as sent, or the received time where the workspace's rule replaces it."""
    if received is not None and not received - _MAX_AGE <= sent <= received + _MAX_AHEAD:
        return received
    return sent


def _event_row(envelope: dict[str, Any], received: datetime | None = None) -> dict[str, Any]:
    """One event as ``customEvents`` names its columns."""
    data = envelope.get("data") or {}
    base = data.get("baseData") or {}
    tags = envelope.get("tags") or {}
    sample_rate = float(envelope.get("sampleRate") or 100.0)
    row: dict[str, Any] = {
        "timestamp": _time_generated(_timestamp(envelope.get("time")), received),
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
    return row


class LocalStore:
    """A DuckDB file plus the HTTP endpoint that fills it. Use as a context manager."""

    def __init__(
        self,
        db_path: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        resource_id: str = LOCAL_RESOURCE_ID,
        received_at: Callable[[], datetime] | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ):
        self.db_path = Path(db_path)
        self._idle_seconds = idle_seconds
        self._host, self._port = host, port
        self._lock = threading.Lock()
        #: The connection writes go through, held while they keep coming (`_release_if_idle`).
        self._writer: duckdb.DuckDBPyConnection | None = None
        self._last_write = 0.0
        self._server: IngestionServer | None = None
        self._thread: threading.Thread | None = None
        #: The Application Insights resource this store stands for (AppEvents._ResourceId).
        self.resource_id = resource_id
        #: The ingestion clock; None keeps every time as sent.
        self._received_at = received_at
        self.received = 0
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            _create_tables(con)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, so another process can open the file when it is idle."""
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
        events: list[dict[str, Any]] = []
        others: list[tuple[Any, ...]] = []
        received = None
        if self._received_at is not None:
            received = self._received_at().astimezone(UTC).replace(tzinfo=None)
        for envelope in envelopes:
            base_type = ((envelope.get("data") or {}).get("baseType")) or ""
            if base_type == "EventData":
                events.append(_event_row(envelope, received))
            else:
                others.append(
                    (
                        _timestamp(envelope.get("time")),
                        envelope.get("name"),
                        base_type,
                        json.dumps(envelope),
                    )
                )
        tables = self._tables(events)
        with self._lock:
            con = self._connection()
            # One transaction: a batch is in both tables or in neither, and commits once.
            con.begin()
            try:
                for table, columns in tables.items():
                    _insert(con, table, columns)
                if others:
                    con.executemany("INSERT INTO otherTelemetry VALUES (?, ?, ?, ?)", others)
                con.commit()
            except BaseException:
                con.rollback()
                raise
            finally:
                self._last_write = time.monotonic()
                if self._server is None:  # not serving: nothing would let the file go later
                    self._writer = None
                    con.close()
        self.received += len(envelopes)
        return len(envelopes)

    def _tables(self, events: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
        """The events as columns of ``customEvents``, and of ``AppEvents`` under the
        workspace's names."""
        if not events:
            return {}
        columns = _filled(events)
        workspace = {
            _APPEVENTS_COLUMNS[name]: values
            for name, values in columns.items()
            if name in _APPEVENTS_COLUMNS
        }
        parts = self.resource_id.split("/")
        workspace["Type"] = ["AppEvents"] * len(events)
        workspace["_ResourceId"] = [self.resource_id] * len(events)
        workspace["_SubscriptionId"] = [parts[2] if len(parts) > 2 else None] * len(events)
        return {"customEvents": columns, "AppEvents": workspace}

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The writing connection (under the lock), opened when the first write of a burst
        comes. Opening the file and closing it (DuckDB checkpoints on close) cost more than
        writing a batch, so it stays open while writes keep coming."""
        if self._writer is None:
            self._writer = _open(self.db_path, read_only=False)
        return self._writer

    @property
    def holds_file(self) -> bool:
        """Whether the store has its file open for writing (other processes wait)."""
        return self._writer is not None

    def _release_if_idle(self) -> None:
        """Close the writing connection once no write has come for ``idle_seconds``, so that
        another process (``query`` beside ``store``) can open the file: DuckDB lets one process
        at a time hold a database file it writes to. Called from the serving loop."""
        with self._lock:
            idle = time.monotonic() - self._last_write
            if self._writer is not None and idle >= self._idle_seconds:
                self._writer.close()
                self._writer = None

    def start(self) -> LocalStore:
        store = self

        class Handler(IngestionHandler):
            target = store

        self._server = IngestionServer((self._host, self._port), Handler)
        self._server.on_idle = self._release_if_idle
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
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __enter__(self) -> LocalStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _filled(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as columns, the columns some row fills only."""
    names = sorted({name for row in rows for name, value in row.items() if value is not None})
    return {name: [row.get(name) for row in rows] for name in names}


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]]) -> None:
    """One statement for the whole batch, a list parameter per column: DuckDB's executemany
    runs one statement per row, and a VALUES list binds a parameter per cell; both are several
    times slower (``python -m chargeback bench`` measures the store's rate)."""
    kinds = dict(_schema(f"{table}.schema.json"))
    names = ", ".join(f'"{name}"' for name in columns)
    lists = ", ".join(f"unnest(?::{_DUCKDB_TYPES[kinds[name]]}[])" for name in columns)
    con.execute(f"INSERT INTO {table} ({names}) SELECT {lists}", list(columns.values()))


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    # Another process may hold the file for a moment (a store writing a burst).
    for attempt in range(50):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.ConnectionException:
            if not read_only:
                raise
            # This process writes the file (a local store serving here): DuckDB opens a file
            # once per process, with one configuration, so read through that instance.
            con = duckdb.connect(str(path))
        except duckdb.IOException:
            if attempt == 49:
                raise
            time.sleep(0.1)
            continue
        con.execute("SET TimeZone = 'UTC'")
        return con
    raise AssertionError("unreachable")
