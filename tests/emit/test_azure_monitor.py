"""The emit stage: the whole event as Application Insights stores it, through the real exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chargeback.emit import AzureMonitorSink, ChargebackEvent
from chargeback.errors import TelemetryNotAccepted
from chargeback.local.store import LocalStore
from tests.support.ingestion import FaultyIngestion, serve

ROOT = Path(__file__).resolve().parents[2]

EVENT = ChargebackEvent(
    timestamp=datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC),
    dimensions={"RequestId": "r-1", "AppKey": "finance-XXXX", "PromptTokens": "23"},
    measurements={"PromptTokens": 23.0, "CompletionTokens": 11.0, "TotalTokens": 34.0},
)


def _rows(store: LocalStore) -> list[tuple[Any, ...]]:
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT name, CAST(timestamp AS VARCHAR), customDimensions, customMeasurements,"
            " cloud_RoleName, itemCount FROM customEvents"
        ).fetchall()


def test_event_arrives_whole_and_alone(local_store: LocalStore) -> None:
    sink = AzureMonitorSink(
        local_store.connection_string,
        cloud_role_name="chargeback-test",
        clock=lambda: EVENT.timestamp + timedelta(minutes=5),  # sent soon after the call
    )
    try:
        sink.send([EVENT])
    finally:
        sink.close()
    ((name, timestamp, dimensions, measurements, role, count),) = _rows(local_store)
    assert name == "Azure OpenAI Tokens"
    assert timestamp == "2026-11-20 10:00:00.123"  # the call's time, not the export's
    assert json.loads(dimensions) == {
        "RequestId": "r-1",
        "AppKey": "finance-XXXX",
        "PromptTokens": "23",
        "logger_name": "chargeback.events",  # the exporter adds the logger's name
    }
    assert json.loads(measurements) == {
        "PromptTokens": 23.0,
        "CompletionTokens": 11.0,
        "TotalTokens": 34.0,
    }
    assert (role, count) == ("chargeback-test", 1)
    with local_store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM otherTelemetry").fetchone() == (0,)


def test_jsonl_form() -> None:
    assert EVENT.to_json() == {
        "name": "Azure OpenAI Tokens",
        "timestamp": "2026-11-20T10:00:00.123Z",
        "customDimensions": {"RequestId": "r-1", "AppKey": "finance-XXXX", "PromptTokens": "23"},
        "customMeasurements": {"PromptTokens": 23.0, "CompletionTokens": 11.0, "TotalTokens": 34.0},
    }


WORKER = """
import sys
from datetime import datetime, timezone
from azure.monitor.opentelemetry import configure_azure_monitor
from chargeback.emit import AzureMonitorSink, ChargebackEvent

# What the Functions worker does when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true:
# one global provider, its handler on the root logger.
configure_azure_monitor(connection_string=sys.argv[1], logger_name="",
                        enable_live_metrics=False, disable_offline_storage=True)
# Root stays at WARNING, as in the worker; events never pass through Python logging, so its
# handler (which turns records into traces) never sees them.
sink = AzureMonitorSink(None, reuse_worker=True)
sink.send([ChargebackEvent(datetime(2026, 11, 20, tzinfo=timezone.utc), {"RequestId": "w-1"},
                           {"TotalTokens": 5.0})])
"""


def test_reuses_the_workers_provider_without_a_duplicate_trace(local_store: LocalStore) -> None:
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none"
    )
    subprocess.run(
        [sys.executable, "-c", WORKER, local_store.connection_string],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    rows = _rows(local_store)
    assert [json.loads(row[2]) for row in rows] == [
        {"RequestId": "w-1", "logger_name": "chargeback.events"}
    ]
    with local_store.connect(read_only=True) as con:
        traces = con.execute(
            "SELECT count(*) FROM otherTelemetry WHERE baseType = 'MessageData'"
        ).fetchone()
    assert traces == (0,)


def test_an_event_older_than_ingestion_accepts_is_stamped_inside_its_window() -> None:
    """After an outage of more than two days, or a dead letter replayed later, an envelope with
    its call's time would be refused for good (ingestion's 48-hour rule) and the partition
    stopped. It is stamped an hour inside the window instead; the call's time stays in the
    Timestamp dimension, which the queries bill by."""
    sent_at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    old = ChargebackEvent(
        datetime(2026, 11, 27, 23, 30, tzinfo=UTC),
        {"RequestId": "late-1", "Timestamp": "2026-11-27T23:30:00.000Z"},
        {"TotalTokens": 5.0},
    )
    ingestion = FaultyIngestion(None, now=sent_at)
    with serve(ingestion) as connection:
        as_before = AzureMonitorSink(connection, backoff_seconds=0, clock=None)
        with pytest.raises(TelemetryNotAccepted):
            as_before.send([old])  # refused three times: would be retried without end
        assert ingestion.accepted == []
        AzureMonitorSink(connection, clock=lambda: sent_at).send([old])
    (envelope,) = ingestion.accepted
    assert envelope["time"] == "2026-11-29T13:00:00Z"  # 47 hours before it was sent
    assert envelope["data"]["baseData"]["properties"]["Timestamp"] == "2026-11-27T23:30:00.000Z"
