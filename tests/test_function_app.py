"""The Function as the host sees it: its binding, and a batch through the real exporter into the
local store, checked with the KQL queries."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

import function_app
from chargeback import runtime
from chargeback.local.kql import run_kql
from chargeback.local.store import LocalStore
from tests.support.host import host_batch
from tests.support.messages import v1_message

QUERIES = Path(__file__).parent.parent / "queries"

# The host indexes the app once; so do the tests (a second call fails on duplicate names).
(FUNCTION,) = function_app.app.get_functions()
handle_batch = FUNCTION.get_user_function()


def test_binding_is_what_the_host_reads() -> None:
    assert json.loads(FUNCTION.get_function_json()) == {
        "scriptFile": "function_app.py",
        "bindings": [
            {
                "direction": "IN",
                "dataType": "BINARY",
                "type": "eventHubTrigger",
                "name": "events",
                "connection": "EventHubConnection",
                "eventHubName": "%EVENTHUB_NAME%",
                "cardinality": "MANY",
                "consumerGroup": "%EVENTHUB_CONSUMER_GROUP%",
            }
        ],
    }


def test_failed_batches_are_retried_until_they_succeed() -> None:
    retry = FUNCTION.get_settings_dict("retry_policy")
    assert retry == {
        "setting_name": "retry_policy",
        "strategy": "exponential_backoff",
        "max_retry_count": "-1",
        "minimum_interval": "00:00:05",
        "maximum_interval": "00:15:00",
    }


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch, local_store: LocalStore, azurite: Any
) -> Iterator[LocalStore]:
    """App settings as in Azure, pointing at the local store and Azurite."""
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", local_store.connection_string)
    monkeypatch.setenv("DeadLetterStorage", azurite.connection_string)
    monkeypatch.setenv("CHARGEBACK_DEADLETTER_CONTAINER", "e2e-deadletter")
    runtime.reset()
    yield local_store
    runtime.reset()


def _records(records: list[dict[str, Any]], endpoint: str, stream: bool, n: int) -> list[Any]:
    chosen = [
        r
        for r in records
        if r["status"] == 200 and r["usage"] and r["endpoint"] == endpoint and r["stream"] == stream
    ]
    return chosen[:n]


def test_batch_end_to_end_through_the_exporter(
    function_env: LocalStore, records: list[dict[str, Any]], azurite: Any
) -> None:
    units = {"finance": "fin-app-0001", "marketing": "mkt-app-0002", "research": "rnd-app-0003"}
    picked = (
        _records(records, "chat", False, 4)
        + _records(records, "chat", True, 3)
        + _records(records, "embeddings", False, 2)
        + _records(records, "responses", False, 2)
        + _records(records, "responses", True, 2)
    )
    bodies: list[bytes] = []
    expected: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i, record in enumerate(picked):
        unit = list(units)[i % 3]
        bodies.append(
            v1_message(
                record,
                f"call-{i}",
                model=False,
                usage=False,
                businessUnit=unit,
                subscriptionId=units[unit],
            )
        )
        usage = record["usage"]
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
        totals = expected[unit]
        totals[0] += 1
        totals[1] += prompt
        totals[2] += completion
        totals[3] += usage["total_tokens"]
    bodies.append(bodies[0])  # redelivered in the same batch
    bodies.append(b'{"version": 1, "requestId": "x"')  # cut before it can be identified

    handle_batch(host_batch(bodies, partition="7", first_sequence=500))
    # Event Hubs redelivers the whole batch after a restart: nothing may be counted twice.
    handle_batch(host_batch(bodies, partition="7", first_sequence=500))

    result = run_kql(function_env.db_path, (QUERIES / "tokens-by-business-unit.kql").read_text())
    assert result.columns == [
        "BusinessUnit",
        "Calls",
        "PromptTokens",
        "CompletionTokens",
        "TotalTokens",
    ]
    got = {row[0]: list(row[1:]) for row in result.rows}
    assert got == dict(expected)

    with function_env.connect(read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM customEvents").fetchone()
        other = con.execute("SELECT count(*) FROM otherTelemetry").fetchone()
    assert rows == (2 * len(picked),)  # one row per call per delivery, before dedup
    assert other == (0,)  # no trace, no duplicate telemetry of another type

    container = ContainerClient.from_connection_string(azurite.connection_string, "e2e-deadletter")
    letters = list(container.list_blobs(include=["metadata"]))
    # The same cut message delivered twice is the same dead letter: one blob.
    assert len(letters) == 1
    assert letters[0].metadata["reason"] == "unidentifiable"
    assert letters[0].metadata["partition"] == "7"
    assert letters[0].metadata["sequence_number"] == str(500 + len(bodies) - 1)
    assert letters[0].name.startswith("2026/11/20/unidentifiable/7-")
    content = container.download_blob(letters[0].name).readall()
    assert content == b'{"version": 1, "requestId": "x"'


def test_each_query_runs_on_the_function_output(
    function_env: LocalStore, records: list[dict[str, Any]]
) -> None:
    picked = _records(records, "chat", False, 3)
    bodies = [
        v1_message(r, f"q-{i}", subscriptionId=f"subscription-{i}", businessUnit="finance")
        for i, r in enumerate(picked)
    ]
    handle_batch(host_batch(bodies))
    for path in sorted(QUERIES.glob("*.kql")):
        result = run_kql(function_env.db_path, path.read_text())
        assert result.columns, path.name
