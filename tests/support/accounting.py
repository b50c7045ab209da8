"""The account every test batch must balance."""

from __future__ import annotations

from chargeback.batches import BatchReport

OUTCOMES = {"emitted", "skipped", "dead-lettered"}


def assert_accounted(report: BatchReport, received: int) -> None:
    """Every message ended as exactly one of emitted, skipped (with a reason) or dead-lettered."""
    assert report.received == received
    assert report.received == report.emitted + report.skipped + report.dead_lettered
    for outcome in report.outcomes:
        assert outcome.kind in OUTCOMES
        if outcome.kind != "emitted":
            assert outcome.reason, outcome
