"""API Management's resource logs through the processor (issue 14): each GatewayLlmLogs record
is the tokens half of a call, billed exactly as API Management counted it; each billable
GatewayLogs record the identity half; nothing waits for the other half; a bad record does not
stop the others; every record is accounted for. The records are in their documented shape
(tests/support/resource_logs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chargeback.batches import BatchReport
from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings
from tests.support.accounting import assert_accounted
from tests.support.resource_logs import CALL, GATEWAY, LLM_CAMEL, LLM_PASCAL, message, renamed

SAMPLE_MAP = Path(__file__).resolve().parents[1] / "samples" / "identity-map.json"


@pytest.fixture
def mapped() -> Settings:
    """The sample identity map, which charges APIM subscription ``mkt-writer-91cc`` to
    marketing; the sample GatewayLogs record is that subscription's call."""
    return load_settings(
        identity_map_file=SAMPLE_MAP,
        identity_order=("appId", "subscriptionId", "productId", "appKey"),
    )


def run(settings: Settings, *bodies: bytes) -> tuple[BatchReport, list[ChargebackEvent], Any]:
    events, dead = MemorySink(), MemoryDeadLetters()
    raws = [RawMessage(body, "2", 40 + i) for i, body in enumerate(bodies)]
    report = Processor(settings, events, dead).process_batch(raws)
    return report, events.events, dead


def test_the_tokens_half_bills_what_api_management_counted(mapped: Settings) -> None:
    """A streamed call, billed exactly from its LLM log: 1523 prompt tokens of which 1280
    cached, 211 completion tokens, at gpt-4o's price."""
    report, events, _ = run(mapped, message(LLM_CAMEL))
    assert_accounted(report, 1)
    (event,) = events
    dims, values = event.dimensions, event.measurements
    assert dims["RequestId"] == CALL
    assert dims["TokenSource"] == "gateway"
    assert dims["LogCategory"] == "GatewayLlmLogs"
    assert dims["MessageShape"] == "resource-logs"
    assert (dims["Model"], dims["Deployment"], dims["Stream"]) == (
        "gpt-4o-2024-08-06",
        "gpt-4o",
        "true",
    )
    assert dims["Timestamp"] == "2026-11-20T10:00:01.234Z"
    assert (dims["PromptTokens"], dims["CompletionTokens"], dims["TotalTokens"]) == (
        "1523",
        "211",
        "1734",
    )
    assert values["CachedTokens"] == 1280.0
    assert dims["Priced"] == "true" and values["Cost"] > 0
    # The LLM log names no caller: the identity half, or the v1 message, does (see the queries).
    assert (dims["BusinessUnit"], dims["IdentitySource"]) == ("unassigned", "unassigned")


def test_the_identity_half_names_the_caller_and_carries_no_tokens(mapped: Settings) -> None:
    gateway = renamed(GATEWAY, apimSubscriptionId="mkt-writer-91cc")
    report, events, _ = run(mapped, message(gateway))
    assert_accounted(report, 1)
    (event,) = events
    dims = event.dimensions
    assert dims["RequestId"] == CALL and dims["LogCategory"] == "GatewayLogs"
    assert "TokenSource" not in dims and "Cost" not in event.measurements
    assert event.measurements["TotalTokens"] == 0.0
    assert (dims["SubscriptionId"], dims["BusinessUnit"], dims["Application"]) == (
        "mkt-writer-91cc",
        "marketing",
        "Campaign writer",
    )
    assert (dims["ApiOperation"], dims["Deployment"], dims["ApiVersion"]) == (
        "chat.completion",
        "gpt-4o",
        "2024-10-21",
    )


def test_both_halves_in_one_message_and_a_split_record_count_once(mapped: Settings) -> None:
    """A request and its response logged as separate GatewayLlmLogs records (the counts on
    one of them), the GatewayLogs record, and an ignored category, in one message."""
    response_part = renamed(
        LLM_CAMEL, sequenceNumber=1, promptTokens=None, completionTokens=None, totalTokens=None
    )
    websocket = {**GATEWAY, "category": "WebSocketConnectionLogs"}
    report, events, _ = run(mapped, message(GATEWAY, LLM_CAMEL, response_part, websocket))
    assert_accounted(report, 3)  # the two LLM records of one call are one item
    assert sorted(e.dimensions["LogCategory"] for e in events) == ["GatewayLlmLogs", "GatewayLogs"]
    assert [o.reason for o in report.outcomes if o.kind == "skipped"] == [
        "category-WebSocketConnectionLogs"
    ]
    (tokens,) = (e for e in events if e.dimensions.get("TokenSource") == "gateway")
    assert tokens.measurements["TotalTokens"] == 1734.0


def test_a_gateway_log_of_a_call_that_does_not_bill_is_skipped_with_its_reason(
    settings: Settings,
) -> None:
    get = renamed(GATEWAY, method="GET")
    failed = renamed(GATEWAY, responseCode=429)
    other_api = renamed(GATEWAY, url="https://apim-contoso.azure-api.net/weather/forecast")
    report, events, _ = run(settings, message(get), message(failed), message(other_api))
    assert events == []
    assert [o.reason for o in report.outcomes] == [
        "method-GET",
        "status-429",
        "not-billable-operation",
    ]


def test_a_bad_record_is_dead_lettered_and_the_others_are_billed(settings: Settings) -> None:
    bad = renamed(LLM_PASCAL, PromptTokens="lots")
    body = message(bad, LLM_CAMEL)
    report, events, dead = run(settings, body)
    assert_accounted(report, 2)
    assert [e.dimensions["RequestId"] for e in events] == [CALL]
    (letter,) = dead.letters
    assert letter.raw.body == body  # the original message, byte for byte
    assert letter.reason == "malformed"
    assert letter.detail == "record 0: promptTokens is a string of 4 characters, not a whole number"


def test_a_tokens_record_without_its_counts_is_dead_lettered(settings: Settings) -> None:
    no_completion = renamed(LLM_CAMEL, completionTokens=None)
    report, events, dead = run(settings, message(no_completion))
    assert events == [] and [o.kind for o in report.outcomes] == ["dead-lettered"]
    assert dead.letters[0].detail == f"{CALL}: GatewayLlmLogs record has no completionTokens"


def test_a_half_redelivered_in_the_same_batch_is_emitted_once(settings: Settings) -> None:
    report, events, _ = run(settings, message(LLM_CAMEL), message(LLM_CAMEL))
    assert len(events) == 1
    assert [o.reason for o in report.outcomes] == ["", "duplicate-in-batch"]


def test_a_message_that_is_not_the_envelope_is_dead_lettered(settings: Settings) -> None:
    body = b'{"records": {"not": "a list"}}'
    report, events, dead = run(settings, body)
    assert events == [] and report.dead_lettered == 1
    assert dead.letters[0].raw.body == body
