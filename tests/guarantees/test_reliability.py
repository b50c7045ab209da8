"""Issue #5, points 3 and 6: events that Application Insights did not accept fail the batch, so
it is run again before the checkpoint moves; after an outage (503, 429, partial success, answers
too late) the KQL totals equal the expected totals exactly. Everything goes through the real
azure-monitor-opentelemetry exporter into a real `LocalStore`, behind `FaultyIngestion`.

Issue #12: no outcome here depends on the machine's speed. The endpoint decides what happens to
each request; the sink keeps its production timeout (30 s), which no answer comes near, however
slowly the store writes; only `test_a_silent_endpoint_is_given_up_after_the_read_timeout` lets
the read timeout fire, against an endpoint that never answers.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargeback.batches import run_batches
from chargeback.emit import AzureMonitorSink, ChargebackEvent
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.errors import TelemetryNotAccepted
from chargeback.local.kql import run_kql
from chargeback.local.store import LocalStore
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings
from tests.support.accounting import assert_accounted
from tests.support.ingestion import FaultyIngestion, serve
from tests.support.messages import reported_tokens, v1_message

QUERY = (
    Path(__file__).resolve().parents[2] / "queries" / "tokens-by-business-unit.kql"
).read_text()


def _event(request_id: str) -> ChargebackEvent:
    return ChargebackEvent(
        datetime(2026, 11, 20, 10, tzinfo=UTC),
        {"RequestId": request_id, "BusinessUnit": "finance"},
        {"TotalTokens": 5.0},
    )


@pytest.mark.parametrize("fault", ["503", "429", "500", "206", "late", "hang", "400"])
def test_a_failed_export_raises_and_keeps_the_events(local_store: LocalStore, fault: str) -> None:
    """Every answer but a full 200 fails the send (three tries, one HTTP request each); the
    batch run again (as Event Hubs does) sends the same events once more and they arrive."""
    ingestion = FaultyIngestion(local_store, lambda n: fault if n < 3 else "ok")
    with serve(ingestion) as connection:
        sink = AzureMonitorSink(connection, backoff_seconds=0)
        events = [_event(f"r{i}") for i in range(4)]
        with pytest.raises(TelemetryNotAccepted):
            sink.send(events)
        assert ingestion.requests == [fault] * 3  # one HTTP attempt per try: no hidden retries
        sink.send(events)  # Event Hubs runs the batch again
        sink.close()
    assert ingestion.requests == [fault] * 3 + ["ok"]
    assert [e["data"]["baseData"]["properties"]["RequestId"] for e in ingestion.envelopes[-4:]] == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]
    with local_store.connect(read_only=True) as con:
        stored = con.execute(
            "SELECT count(*), count(DISTINCT customDimensions->>'RequestId') FROM customEvents"
        ).fetchone()
    assert stored is not None and stored[1] == 4  # all four arrived; some maybe twice


def test_a_silent_endpoint_is_given_up_after_the_read_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint that holds the connection and never answers: each try ends when the
    exporter's read timeout fires and it closes the connection (the endpoint waits for exactly
    that, not for a clock); after three tries the send fails; the batch run again fails the
    same way, whole."""
    ingestion = FaultyIngestion(None, lambda _n: "silent")
    with serve(ingestion) as connection, caplog.at_level(logging.WARNING):
        sink = AzureMonitorSink(connection, timeout=0.25, backoff_seconds=0)
        events = [_event(f"r{i}") for i in range(4)]
        for _ in range(2):
            with pytest.raises(TelemetryNotAccepted):
                sink.send(events)
        sink.close()
    assert ingestion.requests == ["silent"] * 6
    timeouts = [r.getMessage() for r in caplog.records if "Read timed out" in r.getMessage()]
    assert len(timeouts) == 6, timeouts
    assert all("read timeout=0.25" in message for message in timeouts), timeouts
    # Every try of both sends carried the whole batch: nothing was dropped on the way.
    sent = [e["data"]["baseData"]["properties"]["RequestId"] for e in ingestion.envelopes]
    assert sent == ["r0", "r1", "r2", "r3"] * 6


def _workload(records: list[dict[str, Any]], n: int) -> tuple[list[bytes], dict[str, list[int]]]:
    """``n`` billable calls over three business units, with skips, dead letters and
    redeliveries mixed in; and the totals the chargeback must show."""
    billable = [r for r in records if r["status"] == 200 and r["usage"]]
    failed = [r for r in records if r["status"] != 200]
    units = ("finance", "marketing", "research")
    bodies: list[bytes] = []
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i, record in zip(range(n), itertools.cycle(billable), strict=False):
        unit = units[i % 3]
        bodies.append(v1_message(record, f"call-{i}", businessUnit=unit))
        prompt, completion, total = reported_tokens(record["usage"])
        row = expected[unit]
        row[0] += 1
        row[1] += prompt
        row[2] += completion
        row[3] += total
        if i % 97 == 0:
            bodies.append(v1_message(failed[i % len(failed)], f"failed-{i}"))  # skipped
        if i % 89 == 0:
            bodies.append(b'{"version": 1, "requestId": "cut-' + str(i).encode())  # dead letter
        if i % 50 == 0 and i:
            bodies.append(bodies[-7])  # Event Hubs delivers at least once
    return bodies, expected


def test_outage_then_recovery_totals_are_exact(
    local_store: LocalStore, settings: Settings, records: list[dict[str, Any]]
) -> None:
    bodies, expected = _workload(records, 3000)
    faults = ["503", "429", "206", "late", "503", "hang", "206", "429", "500"]
    # The first 60 requests fail in turn; then the endpoint recovers.
    ingestion = FaultyIngestion(local_store, lambda n: faults[n % len(faults)] if n < 60 else "ok")
    log = io.StringIO()
    with serve(ingestion) as connection:
        sink = AzureMonitorSink(connection, backoff_seconds=0)
        dead = MemoryDeadLetters()
        processor = Processor(settings, sink, dead)
        messages = (RawMessage(body, "0", i) for i, body in enumerate(bodies))
        report = run_batches(processor, messages, retries=100, backoff=0, errors=log)
        sink.close()

    assert_accounted(report, len(bodies))
    assert log.getvalue().count("retrying batch after") >= 15  # the outage was felt
    assert set(ingestion.requests[:60]) == set(faults)
    # Redeliveries in another batch are emitted again (KQL removes them); none is lost.
    assert {o.request_id for o in report.outcomes if o.kind == "emitted"} == {
        f"call-{i}" for i in range(3000)
    }
    assert {o.reason for o in report.outcomes if o.kind == "dead-lettered"} == {"unidentifiable"}

    result = run_kql(local_store.db_path, QUERY)
    got = {row[0]: list(row[1:]) for row in result.rows}
    assert got == dict(expected)
    with local_store.connect(read_only=True) as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT customDimensions->>'RequestId') FROM customEvents"
        ).fetchone() or (0, 0)
    assert distinct == 3000
    assert rows > distinct  # partial successes and late answers did store duplicates
