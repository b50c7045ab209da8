"""CONTRACTS §1d: resource-log envelopes from an API Management diagnostic setting.

The records below are in the documented shape, not made up field by field:

- the envelope, ``{"records": [...]}`` with several records per message: "Send Azure resource
  log data to ... Event Hubs" (learn.microsoft.com/azure/azure-monitor/essentials/resource-logs
  #send-to-azure-event-hubs);
- the top-level fields of every record (``time``, ``resourceId``, ``category``,
  ``operationName``, ``properties``, and optionally ``correlationId``, ``callerIpAddress``,
  ``location``): "Common and service-specific schemas for Azure resource logs"
  (learn.microsoft.com/azure/azure-monitor/essentials/resource-logs-schema);
- GatewayLlmLogs properties: the columns of table ApiManagementGatewayLlmLog
  (learn.microsoft.com/azure/azure-monitor/reference/tables/apimanagementgatewayllmlog), in
  PascalCase as the table names them and in camelCase as the Event Hubs payload carries them,
  plus ``promptCachedTokens``, which only the Event Hubs payload has (issue 14);
- GatewayLogs: the sample entry and schema of "Tutorial: Monitor published APIs"
  (MicrosoftDocs/azure-docs, articles/api-management/api-management-howto-use-azure-monitor.md,
  2020 revision), where ``correlationId`` and ``callerIpAddress`` sit at the top level and the
  rest in ``properties``;
- split records: "Messages larger than 32 KB are split and logged in 32 KB chunks with sequence
  numbers", requests and responses in separate entries correlated by CorrelationId
  (learn.microsoft.com/azure/api-management/api-management-howto-llm-logs).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargeback.errors import MalformedMessage, UnidentifiableMessage
from chargeback.gateway.resource_logs import (
    GatewayIdentity,
    LlmUsage,
    RecordError,
    Skipped,
    is_resource_log_envelope,
    parse_resource_log_message,
    parse_resource_log_records,
)
from tests.support.resource_logs import (
    CALL,
    GATEWAY,
    LLM_CAMEL,
    LLM_PASCAL,
    RESOURCE,
    message,
    renamed,
)


def test_an_llm_record_in_event_hubs_spelling_gives_the_calls_tokens() -> None:
    (usage,) = parse_resource_log_message(message(LLM_CAMEL))
    assert usage == LlmUsage(
        correlation_id=CALL,
        # Azure Monitor writes 7 fraction digits; kept to the microsecond.
        time=datetime(2026, 11, 20, 10, 0, 1, 234567, tzinfo=UTC),
        resource_id=RESOURCE,
        model="gpt-4o-2024-08-06",
        deployment="gpt-4o",
        prompt_tokens=1523,
        completion_tokens=211,
        total_tokens=1734,
        cached_tokens=1280,
        stream=True,
        sequence_number=0,
        api_version="2024-10-21",
        llm_request_id="chatcmpl-AXc3",
        region="East US",
        records=1,
    )


def test_the_table_spelling_reads_the_same_and_has_no_cached_tokens() -> None:
    (usage,) = parse_resource_log_message(message(LLM_PASCAL))
    assert isinstance(usage, LlmUsage)
    assert usage.correlation_id == "9d1c0b2a-0000-4000-8000-000000000002"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 9, 49)
    assert usage.cached_tokens is None
    assert (usage.model, usage.deployment, usage.stream) == (
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini",
        False,
    )
    assert usage.api_version == "2024-06-01"


def test_both_spellings_in_one_message_give_the_same_result_as_each_alone() -> None:
    pascal_of_camel = copy.deepcopy(LLM_CAMEL)
    pascal_of_camel["properties"] = {
        k[0].upper() + k[1:]: v for k, v in LLM_CAMEL["properties"].items()
    }
    pascal_of_camel["Category"] = pascal_of_camel.pop("category")
    camel, pascal = (
        parse_resource_log_records([LLM_CAMEL]),
        parse_resource_log_records([pascal_of_camel]),
    )
    assert camel == pascal


def test_a_gateway_log_record_gives_who_made_the_call() -> None:
    (identity,) = parse_resource_log_message(message(GATEWAY))
    assert identity == GatewayIdentity(
        correlation_id=CALL,
        time=datetime(2026, 11, 20, 10, 0, 0, 987654, tzinfo=UTC),
        resource_id=RESOURCE,
        subscription_id="finance-chatbot",
        product_id="finance",
        user_id="1",
        api_id="azure-openai",
        operation_id="ChatCompletions_Create",
        caller_ip="10.1.2.3",
        backend_id="aoai-eastus",
        url=GATEWAY["properties"]["url"],
        status_code=200,
        method="POST",
        region="East US",
    )


def test_the_table_spelling_of_a_gateway_log_reads_the_same() -> None:
    pascal = {k[0].upper() + k[1:]: v for k, v in GATEWAY.items() if k != "properties"}
    pascal["Properties"] = {k[0].upper() + k[1:]: v for k, v in GATEWAY["properties"].items()}
    assert parse_resource_log_records([pascal]) == parse_resource_log_records([GATEWAY])


def test_a_split_llm_record_counts_its_tokens_once() -> None:
    """The request chunk carries the counts; the response arrives as two 32 KB chunks of the
    same call, the second repeating the counts. One usage, counts not summed."""
    first = renamed(LLM_CAMEL, sequenceNumber=0, requestMessages=[{"content": "x" * 50}])
    second = renamed(
        LLM_CAMEL,
        sequenceNumber=1,
        promptTokens=None,
        completionTokens=None,
        totalTokens=None,
        promptCachedTokens=None,
        responseMessages=[{"content": "y" * 50}],
    )
    third = renamed(LLM_CAMEL, sequenceNumber=2, responseMessages=[{"content": "z"}])
    results = parse_resource_log_message(message(third, GATEWAY, second, first))
    usage, identity = results
    assert isinstance(usage, LlmUsage) and isinstance(identity, GatewayIdentity)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1523, 211, 1734)
    assert usage.cached_tokens == 1280
    assert usage.sequence_number == 0 and usage.records == 3


def test_counts_come_from_the_lowest_sequence_number_that_has_them() -> None:
    early = renamed(LLM_CAMEL, sequenceNumber=1, completionTokens=None, totalTokens=None)
    late = renamed(
        LLM_CAMEL, sequenceNumber=2, promptTokens=999, completionTokens=300, totalTokens=1299
    )
    (usage,) = parse_resource_log_records([late, early])
    assert isinstance(usage, LlmUsage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1523, 300, 1299)


def test_a_continuation_without_counts_is_skipped_with_a_reason() -> None:
    continuation = renamed(
        LLM_CAMEL,
        sequenceNumber=3,
        promptTokens=None,
        completionTokens=None,
        totalTokens=None,
        promptCachedTokens=None,
        responseMessages=[{"content": "the rest of a long answer"}],
    )
    (skipped,) = parse_resource_log_message(message(continuation))
    assert isinstance(skipped, Skipped)
    assert skipped.category == "GatewayLlmLogs"
    assert "no token counts" in skipped.reason and CALL in skipped.reason


def test_other_categories_are_skipped_with_a_reason() -> None:
    websocket = {
        "time": "2026-11-20T10:00:03Z",
        "resourceId": RESOURCE,
        "category": "WebSocketConnectionLogs",
        "operationName": "Microsoft.ApiManagement/WebSocketConnectionLogs",
        "properties": {"eventName": "ClientConnected"},
    }
    results = parse_resource_log_message(message(websocket, LLM_CAMEL))
    assert results[0] == Skipped(
        0, "WebSocketConnectionLogs", "category WebSocketConnectionLogs is not used for chargeback"
    )
    assert isinstance(results[1], LlmUsage)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"promptTokens": "lots"}, "promptTokens is a string of 4 characters, not a whole number"),
        ({"completionTokens": -3}, "completionTokens is -3, not a whole number"),
        ({"totalTokens": 12.5}, "totalTokens is 12.5, not a whole number"),
        ({"promptTokens": True}, "promptTokens is true, not a whole number"),
        (
            {"isStreamCompletion": "yes"},
            "isStreamCompletion is a string of 3 characters, not true or false",
        ),
        ({"modelName": ["gpt-4o"]}, "modelName is a list, not a string"),
    ],
)
def test_a_wrong_type_is_a_clear_error_for_that_record_alone(
    change: dict[str, Any], expected: str
) -> None:
    bad = renamed(LLM_CAMEL, **change)
    results = parse_resource_log_message(message(GATEWAY, bad, LLM_PASCAL))
    identity, error, usage = results
    assert isinstance(identity, GatewayIdentity) and isinstance(usage, LlmUsage)
    assert isinstance(error, RecordError)
    assert isinstance(error.error, MalformedMessage)
    assert str(error.error) == f"record 1: {expected}"
    assert error.index == 1 and error.category == "GatewayLlmLogs" and error.record == bad


def test_numbers_written_as_strings_are_read() -> None:
    (usage,) = parse_resource_log_records(
        [renamed(LLM_CAMEL, promptTokens="1523", isStreamCompletion="True")]
    )
    assert isinstance(usage, LlmUsage) and usage.prompt_tokens == 1523 and usage.stream is True


def test_a_record_without_a_correlation_id_cannot_be_joined_and_is_an_error() -> None:
    anonymous = copy.deepcopy(GATEWAY)
    del anonymous["correlationId"]
    (error,) = parse_resource_log_records([anonymous])
    assert isinstance(error, RecordError) and isinstance(error.error, UnidentifiableMessage)
    assert str(error.error) == "record 0 has no correlationId"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("GatewayLogs", "record 0 is a string of 11 characters, not an object"),
        ({"time": "2026-11-20T10:00:00Z", "properties": {}}, "record 0 has no category"),
    ],
)
def test_a_record_that_is_not_a_record_is_an_error(record: object, expected: str) -> None:
    (error,) = parse_resource_log_records([record])
    assert isinstance(error, RecordError) and str(error.error) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "resource-log message is not JSON"),
        (b"\xff\xfe", "resource-log message is not JSON"),
        (json.dumps({"records": {}}).encode(), 'resource-log message has no "records" list'),
        (json.dumps([LLM_CAMEL]).encode(), 'resource-log message has no "records" list'),
    ],
)
def test_a_message_that_is_not_the_envelope_is_malformed(body: bytes, expected: str) -> None:
    with pytest.raises(MalformedMessage, match=expected):
        parse_resource_log_message(body)


def test_the_envelope_is_recognised_by_its_records_list() -> None:
    assert is_resource_log_envelope({"records": []})
    assert not is_resource_log_envelope({"version": 1, "requestId": "x"})
    assert not is_resource_log_envelope({"records": "x"})
    assert parse_resource_log_message(message()) == []


# --- On arrival, as for every shape (issue 16) ------------------------------------------------

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnktdXNlciJ9.c2lnbmF0dXJlLWNhbmFyeQ"
KEY = "5e1f0a7c9b2d4e6f8a0b1c2d3e4f5a6b"


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("11/20/2026 10:00:00 AM", None),
        ("2026-13-20T10:00:00Z", "record 0: field time: not a date and time that exists"),
        ("yesterday", "record 0: field time: not a date and time in a form read"),
        (1767225600, "record 0: field time: a number, not a date and time string"),
    ],
)
def test_the_time_is_read_by_the_gateways_reader(time: object, expected: str | None) -> None:
    (result,) = parse_resource_log_records([{**LLM_CAMEL, "time": time}])
    if expected is None:
        assert isinstance(result, LlmUsage)
        assert result.time == datetime(2026, 11, 20, 10, tzinfo=UTC)
    else:
        assert isinstance(result, RecordError) and isinstance(result.error, MalformedMessage)
        assert str(result.error).startswith(expected)


def test_credentials_in_a_record_are_masked_on_arrival() -> None:
    record = renamed(
        GATEWAY,
        apimSubscriptionId=KEY,
        userId=f"Bearer {JWT}",
        url=f"https://apim/openai/deployments/gpt-4o/chat/completions?subscription-key={KEY}",
    )
    record["correlationId"] = JWT
    (identity,) = parse_resource_log_records([record])
    assert isinstance(identity, GatewayIdentity)
    assert identity.subscription_id == "5e1f0a7cXXXX"
    assert identity.user_id is not None and identity.user_id.startswith("token:")
    assert identity.url is not None and identity.url.endswith("subscription-key=5e1f0a7cXXXX")
    assert identity.correlation_id.startswith("masked:")
    assert JWT not in repr(identity) and KEY[8:] not in repr(identity)
    # A wrong value that is a credential is not quoted in the error either.
    (error,) = parse_resource_log_records([renamed(LLM_CAMEL, promptTokens=JWT)])
    assert isinstance(error, RecordError) and JWT[:12] not in str(error.error)


def test_a_count_of_thousands_of_digits_is_an_error_for_that_record() -> None:
    (error, usage) = parse_resource_log_records(
        [renamed(LLM_CAMEL, promptTokens="1" * 5000), LLM_PASCAL]
    )
    assert isinstance(error, RecordError)
    assert (
        str(error.error)
        == "record 0: promptTokens is a string of 5000 characters, not a whole number"
    )
    assert isinstance(usage, LlmUsage)
