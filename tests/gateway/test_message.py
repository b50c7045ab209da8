"""Gateway messages: the three shapes of CONTRACTS §1, masking on arrival, clear refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chargeback.errors import MalformedMessage, MessageTooLarge, UnidentifiableMessage
from chargeback.gateway import GatewayCall, mask_key, parse_gateway_message
from chargeback.gateway.message import _V1, _from_v1, _v1_fast
from chargeback.receive import RawMessage

V1 = {
    "version": 1,
    "requestId": "5f0c8a4e-1",
    "timestamp": "2026-11-20T10:00:00.123Z",
    "method": "POST",
    "url": "https://gw.contoso.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    "statusCode": 200,
    "subscriptionId": "finance-chatbot",
    "businessUnit": "finance",
    "appId": "7e0a",
    "model": "gpt-4o-2024-08-06",
    "usage": {"prompt_tokens": 23, "completion_tokens": 11, "total_tokens": 34},
    "requestBody": '{"messages": []}',
    "responseBody": "{}",
    "someNewField": "ignored",
}


def parse(fields: object, **raw: Any) -> GatewayCall:
    body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    return parse_gateway_message(RawMessage(body, **raw), max_bytes=1_000_000)


def test_v1() -> None:
    call = parse(V1)
    assert call.shape == "v1"
    assert call.request_id == "5f0c8a4e-1"
    assert call.timestamp == datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC)
    assert call.status_code == 200
    assert call.app_key == "finance-XXXX"
    assert call.usage == {"prompt_tokens": 23, "completion_tokens": 11, "total_tokens": 34}
    assert call.truncated is False


def test_usage_only_masks_the_key_and_derives_a_stable_id() -> None:
    fields = {
        "Timestamp": "2026-11-18T12:00:00Z",
        "ApiOperation": "ChatCompletions_Create",
        "AppKey": "0123456789abcdef0123456789abcdef",
        "PromptTokens": "120",
        "CompletionTokens": "80",
        "TotalTokens": "200",
    }
    call = parse(fields, partition="1", sequence_number=5)
    again = parse(fields, partition="2", sequence_number=9)
    assert call.shape == "usage-only"
    assert call.event_tokens == (120, 80, 200)
    assert call.app_key == "01234567XXXX"
    assert "0123456789abcdef" not in repr(call)
    # The same bytes give the same id on every path, so redeliveries are removed.
    assert call.request_id == again.request_id
    assert call.request_id.startswith("sha256:")


def test_bodies_shape() -> None:
    call = parse(
        {
            "eventTime": "2026-11-19T15:30:00Z",
            "apiOperation": "ChatCompletions_Create",
            "appSubscriptionKey": "abcdefgh-secret-rest",
            "request": '{"messages": []}',
            "response": '{"object": "chat.completion"}',
        }
    )
    assert call.shape == "bodies"
    assert call.app_key == "abcdefghXXXX"
    assert call.request_body == '{"messages": []}'
    assert "secret" not in repr(call)


def test_mask_key() -> None:
    assert mask_key("abc") == "abcXXXX"
    assert mask_key("") is None
    assert mask_key(None) is None


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b"not json", MalformedMessage, "not JSON"),
        (b"[1, 2]", MalformedMessage, "JSON list, not an object"),
        (b'{"hello": 1}', MalformedMessage, "none of the input shapes (1 fields"),
        (b'{"version": 2}', MalformedMessage, "unsupported message version (a int)"),
        (json.dumps({**V1, "statusCode": "abc"}).encode(), MalformedMessage, "field statusCode"),
        (json.dumps({k: v for k, v in V1.items() if k != "url"}).encode(), MalformedMessage, "url"),
        (b"\xff\xfe{}" + b"x" * 10, MalformedMessage, "not UTF-8"),
    ],
)
def test_refusals_say_why(body: bytes, error: type[Exception], says: str) -> None:
    with pytest.raises(error) as caught:
        parse(body)
    assert says in str(caught.value)


def test_too_large() -> None:
    with pytest.raises(MessageTooLarge, match="over CHARGEBACK_MAX_MESSAGE_BYTES=10"):
        parse_gateway_message(RawMessage(b"{" + b" " * 20 + b"}"), max_bytes=10)


def test_cut_message_keeps_identity_and_marks_truncation() -> None:
    text = json.dumps(V1)
    cut = text[: text.index('"responseBody"') + 20]
    call = parse(cut.encode())
    assert call.truncated is True
    assert call.request_id == "5f0c8a4e-1"
    assert call.usage == V1["usage"]


def test_cut_before_identity_is_unidentifiable() -> None:
    text = json.dumps(V1)
    with pytest.raises(UnidentifiableMessage, match="url"):
        parse(text[: text.index('"url"') + 10].encode())


def test_a_cut_usage_object_is_dropped_not_billed() -> None:
    text = json.dumps(V1)
    cut = text[: text.index('"completion_tokens"') + 5]  # {"prompt_tokens": 23, "compl
    call = parse(cut.encode())
    assert call.truncated is True
    assert call.usage is None  # half a usage object would bill 23 prompt tokens and nothing else
    assert call.model == "gpt-4o-2024-08-06"


def test_cut_inside_a_multibyte_character() -> None:
    body = json.dumps({**V1, "responseBody": "é" * 50}, ensure_ascii=False).encode()
    call = parse(body[:-6])  # ends in the middle of a two-byte "é"
    assert call.truncated is True
    assert set(call.response_body or "") == {"é"}


# --- The v1 fast path gives exactly what pydantic gives ------------------------------------

ODD_VALUES: list[Any] = [
    None,
    0,
    1,
    -1,
    200,
    1000,
    2**63,
    1.0,
    True,
    "",
    "x",
    "200",
    "x" * 300,
    "x" * 9000,
    {},
    [],
    {"prompt_tokens": 1},
    "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.1234567Z",
    "2026-13-20T10:00:00Z",
    "2026-11-20T10:00:00+01:00",
    "2026-11-20 10:00:00Z",
    1767225600,
]
FIELD_NAMES = [*V1, "usage", "model", "method", "clientIp"]


@settings(max_examples=400, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(FIELD_NAMES), st.sampled_from([*ODD_VALUES, "<drop>"])),
        max_size=3,
    ),
    truncated=st.booleans(),
)
def test_fast_path_equals_pydantic(changes: list[tuple[str, object]], truncated: bool) -> None:
    fields = dict(V1)
    for name, value in changes:
        if value == "<drop>":
            fields.pop(name, None)
        else:
            fields[name] = value
    fast = _v1_fast(fields, truncated)
    try:
        slow = _from_v1(_V1.model_validate(fields), truncated)
    except (ValidationError, MalformedMessage):
        assert fast is None  # what the full reader refuses, the fast path must leave to it
        return
    assert fast is None or fast == slow
