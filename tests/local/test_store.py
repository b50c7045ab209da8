"""The local store speaks the ingestion protocol: plain and gzip arrays, newline-delimited
envelopes, and the Application Insights column names."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from chargeback.local.kql import run_kql
from chargeback.local.store import LocalStore, customevents_columns

ROOT = Path(__file__).resolve().parents[2]


def _envelope(request_id: str, sample_rate: float = 100.0) -> dict[str, Any]:
    return {
        "ver": 1,
        "name": "Microsoft.ApplicationInsights.Event",
        "time": "2026-11-20T10:00:00.123Z",
        "sampleRate": sample_rate,
        "iKey": "00000000-0000-0000-0000-000000000000",
        "tags": {"ai.cloud.role": "chargeback-processor", "ai.operation.id": "abc"},
        "data": {
            "baseType": "EventData",
            "baseData": {
                "ver": 2,
                "name": "Azure OpenAI Tokens",
                "properties": {"RequestId": request_id},
                "measurements": {"TotalTokens": 12.0},
            },
        },
    }


def _post(
    store: LocalStore, body: bytes, path: str = "/v2.1/track", **headers: str
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{store.port}{path}", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return response.status, json.loads(response.read())


def test_accepts_plain_gzip_and_newline_delimited(local_store: LocalStore) -> None:
    plain = json.dumps([_envelope("a"), _envelope("b")]).encode()
    assert _post(local_store, plain) == (
        200,
        {"itemsReceived": 2, "itemsAccepted": 2, "errors": []},
    )
    zipped = gzip.compress(json.dumps([_envelope("c", sample_rate=25.0)]).encode())
    assert _post(local_store, zipped, **{"Content-Encoding": "gzip"})[1]["itemsAccepted"] == 1
    lines = (json.dumps(_envelope("d")) + "\n" + json.dumps(_envelope("e"))).encode()
    assert _post(local_store, lines)[1]["itemsReceived"] == 2

    with local_store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT customDimensions->>'RequestId', itemCount, name, cloud_RoleName, operation_Id,"
            " itemType, CAST(timestamp AS VARCHAR) FROM customEvents ORDER BY 1"
        ).fetchall()
    assert rows == [
        (
            "a",
            1,
            "Azure OpenAI Tokens",
            "chargeback-processor",
            "abc",
            "customEvent",
            "2026-11-20 10:00:00.123",
        ),
        (
            "b",
            1,
            "Azure OpenAI Tokens",
            "chargeback-processor",
            "abc",
            "customEvent",
            "2026-11-20 10:00:00.123",
        ),
        (
            "c",
            4,
            "Azure OpenAI Tokens",
            "chargeback-processor",
            "abc",
            "customEvent",
            "2026-11-20 10:00:00.123",
        ),
        (
            "d",
            1,
            "Azure OpenAI Tokens",
            "chargeback-processor",
            "abc",
            "customEvent",
            "2026-11-20 10:00:00.123",
        ),
        (
            "e",
            1,
            "Azure OpenAI Tokens",
            "chargeback-processor",
            "abc",
            "customEvent",
            "2026-11-20 10:00:00.123",
        ),
    ]


def test_a_doubled_slash_and_a_wrong_path_on_one_kept_alive_connection(
    local_store: LocalStore,
) -> None:
    """The exporter posts to //v2.1/track when the endpoint ends in a slash; a 404 must not leave
    the request's body unread on a connection that is kept alive."""
    connection = http.client.HTTPConnection("127.0.0.1", local_store.port)
    body = json.dumps([_envelope("x")]).encode()
    connection.request("POST", "/nowhere", body=body)
    missing = connection.getresponse()
    assert (missing.status, missing.read()[:10]) == (404, b'{"error": ')
    connection.request("POST", "//v2.1/track", body=body)
    found = connection.getresponse()
    assert (found.status, json.loads(found.read())["itemsAccepted"]) == (200, 1)
    connection.close()


def test_table_has_application_insights_columns(local_store: LocalStore) -> None:
    with local_store.connect(read_only=True) as con:
        columns = [row[0] for row in con.execute("DESCRIBE customEvents").fetchall()]
    assert columns == [name for name, _ in customevents_columns()]
    for name in (
        "timestamp",
        "name",
        "customDimensions",
        "customMeasurements",
        "itemCount",
        "operation_Id",
        "cloud_RoleName",
    ):
        assert name in columns


def test_bad_body_is_refused_with_an_error(local_store: LocalStore) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{local_store.port}/v2.1/track", data=b"{nope", method="POST"
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as error:
        assert error.code == 400
        assert json.loads(error.read())["itemsAccepted"] == 0
    else:
        raise AssertionError("a malformed body was accepted")


def test_stop_returns_when_no_request_thread_is_left(tmp_path: Path) -> None:
    """Issue 12: the exporter keeps its connection open, and the store's thread for it waits
    for the next request. `stop` ends that thread and returns when no request thread is left:
    one still inside DuckDB when Python exits aborts the process."""
    before = set(threading.enumerate())
    store = LocalStore(tmp_path / "store.duckdb").start()
    kept = http.client.HTTPConnection("127.0.0.1", store.port)
    kept.request("POST", "/v2.1/track", body=json.dumps([_envelope("kept")]).encode())
    assert json.loads(kept.getresponse().read())["itemsAccepted"] == 1  # the connection stays
    started = set(threading.enumerate()) - before
    assert any("process_request_thread" in thread.name for thread in started), started
    store.stop()
    assert set(threading.enumerate()) - before == set()
    kept.close()


def _query_in_another_process(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargeback", "query", "customEvents | count", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def test_writes_keep_the_file_open_and_this_process_still_reads_it(tmp_path: Path) -> None:
    """Issue 12: opening the file for each request and closing it (a checkpoint) cost more
    than the batch's inserts; the store keeps it open while writes come. Readers in the same
    process go through that open database; another process is told the store is busy."""
    with LocalStore(tmp_path / "store.duckdb", idle_seconds=3600) as store:
        assert _post(store, json.dumps([_envelope("a"), _envelope("b")]).encode())[0] == 200
        assert store.holds_file
        with store.connect(read_only=True) as con:
            assert con.execute("SELECT count(*) FROM AppEvents").fetchall() == [(2,)]
        assert run_kql(store.db_path, "customEvents | count").rows == [(2,)]
        busy = _query_in_another_process(store.db_path)
        assert busy.returncode == 2
        assert busy.stderr.startswith(f"query: the local store {store.db_path} is busy"), (
            busy.stderr
        )
    assert not store.holds_file


def test_once_writes_stop_another_process_can_read_the_store(tmp_path: Path) -> None:
    """`query` in one shell while `store` serves in another (docs/deploy.md, "Run it
    locally"): the store lets the file go once no write has come for a moment."""
    with LocalStore(tmp_path / "store.duckdb", idle_seconds=0) as store:
        assert _post(store, json.dumps([_envelope("a")]).encode())[0] == 200
        for _ in range(1200):  # the serving loop lets go within 0.5 s; a hang guard only
            if not store.holds_file:
                break
            time.sleep(0.05)
        assert not store.holds_file
        result = _query_in_another_process(store.db_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "1"
