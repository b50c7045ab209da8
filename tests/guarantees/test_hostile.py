"""Issue #5, point 5: hostile and odd input, property-based. Every parser, fed arbitrary bytes,
mutated real messages, deep nesting, huge numbers, invalid UTF-8 and a wrong type in every
field, ends each message as emitted, skipped or dead-lettered: never an unhandled exception,
and never an ``internal-error`` (the processor's net for bugs)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback.bodies import parse_exchange
from chargeback.emit import MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.errors import BadMessage
from chargeback.gateway import GatewayCall, jsontext, parse_gateway_message
from chargeback.pipeline import Outcome, Processor
from chargeback.receive import RawMessage
from chargeback.settings import load_settings
from tests.support.accounting import assert_accounted
from tests.support.messages import load_records, v1_fields

SETTINGS = load_settings(CHARGEBACK_MAX_MESSAGE_BYTES=300_000)
RECORDS = [r for r in load_records() if len(r["response_text"]) < 20_000]
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WRONG: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    -(10**30),
    1e308,
    "",
    "x",
    "2026-13-45",
    [],
    {},
    [1, "a"],
    {"a": {"b": [None]}},
]


def _process(*bodies: bytes) -> list[Outcome]:
    events, dead = MemorySink(), MemoryDeadLetters()
    report = Processor(SETTINGS, events, dead).process_batch(
        [RawMessage(body, "0", i) for i, body in enumerate(bodies)]
    )
    assert_accounted(report, len(bodies))
    for outcome in report.outcomes:
        assert outcome.reason != "internal-error", outcome
    assert len(events.events) == report.emitted
    assert len(dead.letters) == report.dead_lettered
    for event in events.events:
        assert all(isinstance(v, str) for v in event.dimensions.values())
        assert all(isinstance(v, float) for v in event.measurements.values())
        assert all(0 <= v < 2**53 for k, v in event.measurements.items() if k != "Cost")
    return report.outcomes


def _real(index: int, **kw: Any) -> dict[str, Any]:
    record = RECORDS[index % len(RECORDS)]
    return v1_fields(record, f"req-{index}", **kw)


records = st.integers(min_value=0, max_value=len(RECORDS) - 1)


@FAST
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(body: bytes) -> None:
    _process(body)


@FAST
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_arbitrary_json(value: Any) -> None:
    _process(json.dumps(value).encode())


@FAST
@given(
    records,
    st.lists(
        st.tuples(
            st.integers(min_value=0), st.binary(max_size=8), st.integers(min_value=0, max_value=8)
        ),
        max_size=6,
    ),
)
def test_mutated_real_messages(index: int, edits: list[tuple[int, bytes, int]]) -> None:
    """Bytes replaced, inserted and deleted anywhere, invalid UTF-8 included."""
    body = bytearray(json.dumps(_real(index)).encode())
    for position, insert, delete in edits:
        at = position % (len(body) + 1)
        body[at : at + delete] = insert
    _process(bytes(body))


@FAST
@given(records, st.sampled_from(list(_real(0))), st.sampled_from(WRONG))
def test_a_wrong_type_in_any_field(index: int, name: str, value: Any) -> None:
    fields = _real(index)
    fields[name] = value
    _process(json.dumps(fields).encode())


@FAST
@given(
    records,
    st.sampled_from(
        [
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "input_tokens",
            "output_tokens",
            "prompt_tokens_details",
        ]
    ),
    st.sampled_from(WRONG),
)
def test_a_wrong_type_in_the_usage(index: int, name: str, value: Any) -> None:
    fields = _real(index)
    fields["usage"] = {**(fields.get("usage") or {}), name: value}
    _process(json.dumps(fields).encode())


@FAST
@given(
    records,
    st.sampled_from(["requestBody", "responseBody"]),
    st.sampled_from(
        [
            "messages",
            "model",
            "stream",
            "input",
            "prompt",
            "choices",
            "usage",
            "object",
            "output",
            "data",
            "instructions",
        ]
    ),
    st.sampled_from(WRONG),
)
def test_a_wrong_type_inside_the_bodies(index: int, body: str, name: str, value: Any) -> None:
    fields = _real(index, usage=False)
    try:
        inner = json.loads(fields[body])
    except ValueError:  # a stream: put the value into a chunk instead
        inner = {}
    if isinstance(inner, dict):
        inner[name] = value
    fields[body] = json.dumps(inner)
    _process(json.dumps(fields).encode())


@pytest.mark.parametrize("depth", [10, 255, 256, 257, 5_000, 100_000])
@pytest.mark.parametrize("kind", ["outer", "request", "response", "stream"])
def test_deep_nesting(depth: int, kind: str) -> None:
    deep = "[" * depth + "]" * depth
    fields = _real(1, usage=False)
    if kind == "outer":
        body = ('{"version": 1, "x": ' + deep + "}").encode()
    elif kind == "request":
        body = json.dumps({**fields, "requestBody": '{"messages": ' + deep + "}"}).encode()
    elif kind == "response":
        body = json.dumps({**fields, "responseBody": '{"choices": ' + deep + "}"}).encode()
    else:
        body = json.dumps(
            {**fields, "responseBody": "data: " + deep + "\n\ndata: [DONE]\n\n"}
        ).encode()
    _process(body, body[: len(body) // 2])


@pytest.mark.parametrize(
    "number", ["1" * 5000, "-1", "1e400", "-1e400", "2e308", "9007199254740993", "1.0", "0.5"]
)
def test_huge_and_odd_numbers(number: str) -> None:
    fields = _real(2)
    text = json.dumps(fields)
    for name in ("statusCode", "version"):
        _process(text.replace(f'"{name}": {fields[name]}', f'"{name}": {number}').encode())
    usage = {"prompt_tokens": "P", "completion_tokens": "P", "total_tokens": "P"}
    text = json.dumps({**fields, "usage": usage}).replace('"P"', number)
    outcomes = _process(text.encode())
    # A count that is not a count is never billed as one.
    assert outcomes[0].kind in ("emitted", "dead-lettered")
    usage_only = {
        "Timestamp": "2026-11-20T10:00:00Z",
        "AppKey": "k",
        "PromptTokens": "P",
        "CompletionTokens": "1",
    }
    _process(json.dumps(usage_only).replace('"P"', number).encode())


def test_messages_over_the_limit_are_dead_lettered_unread() -> None:
    limit = load_settings(CHARGEBACK_MAX_MESSAGE_BYTES=1000)
    big = json.dumps({**_real(3), "requestBody": "x" * 2000}).encode()
    dead = MemoryDeadLetters()
    report = Processor(limit, MemorySink(), dead).process_batch([RawMessage(big)])
    (outcome,) = report.outcomes
    assert (outcome.kind, outcome.reason) == ("dead-lettered", "too-large")
    assert outcome.detail == (
        f"message is {len(big)} bytes, over CHARGEBACK_MAX_MESSAGE_BYTES=1000"
    )
    assert dead.letters[0].raw.body == big


# --- The parsers on their own ----------------------------------------------------------------


@FAST
@given(st.text(max_size=400))
def test_loads_prefix_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        jsontext.loads_prefix(text)


@FAST
@given(st.binary(max_size=600))
def test_gateway_raises_only_bad_message(body: bytes) -> None:
    with contextlib.suppress(BadMessage):
        parse_gateway_message(RawMessage(body), max_bytes=10_000)


@FAST
@given(
    st.text(max_size=300),
    st.text(max_size=300),
    st.sampled_from([None, "text/event-stream", "application/json"]),
    st.sampled_from([None, "https://gw/openai/v1/chat/completions", "https://gw/openai/x"]),
)
def test_exchange_parser_never_raises(
    request_body: str, response_body: str, content_type: str | None, url: str | None
) -> None:
    from datetime import UTC, datetime

    call = GatewayCall(
        shape="v1",
        request_id="r",
        timestamp=datetime.now(UTC),
        url=url,
        request_body=request_body,
        response_body=response_body,
        response_content_type=content_type,
    )
    parse_exchange(call)
