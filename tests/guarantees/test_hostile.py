"""Issue #5, point 5: hostile and odd input, property-based. Every parser, fed arbitrary bytes,
mutated real messages, deep nesting, huge numbers, invalid UTF-8 and a wrong type in every
field, ends each message as emitted, skipped or dead-lettered: never an unhandled exception,
and never an ``internal-error`` (the processor's net for bugs).

Issue #16: times in every form a policy writes and out of range, usage objects across the whole
numeric range, and identities shaped like credentials. Every event any test here produces has
plausible counts (prompt + completion within the model's ceiling, total = prompt + completion,
cached <= prompt, reasoning <= completion), a cost no larger than its tokens at the model's
dearest price, and an ISO 8601 time with a four-digit year; no generated credential reaches an
event, a dead letter's name or metadata, an outcome or a log line."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback.batches import Outcome
from chargeback.billing.pricing import PER_MILLION, load_price_table
from chargeback.bodies import parse_exchange
from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.errors import BadMessage
from chargeback.gateway import GatewayCall, jsontext, parse_gateway_message
from chargeback.gateway.timestamps import AHEAD, BEHIND
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import load_settings
from chargeback.tokens.ceilings import MAX_CHOICES, ceiling_for
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


class _Seen:
    """Everything one batch let out of the process: events, dead letters, outcomes, logs."""

    def __init__(self) -> None:
        self.events = MemorySink()
        self.dead = MemoryDeadLetters()
        self.outcomes: list[Outcome] = []
        self.logged: list[str] = []

    def text(self) -> str:
        return json.dumps(
            [
                [e.to_json() for e in self.events.events],
                [[d.name(), d.metadata()] for d in self.dead.letters],
                [list(o) for o in self.outcomes],
                self.logged,
            ]
        )


class _Capture(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


def _process(*bodies: bytes, enqueued: datetime | None = None) -> list[Outcome]:
    return _run(*bodies, enqueued=enqueued).outcomes


def _run(*bodies: bytes, enqueued: datetime | None = None) -> _Seen:
    seen = _Seen()
    logger = logging.getLogger("chargeback")
    handler, level = _Capture(seen.logged), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        report = Processor(SETTINGS, seen.events, seen.dead).process_batch(
            [RawMessage(body, "0", i, enqueued_time=enqueued) for i, body in enumerate(bodies)]
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    seen.outcomes = report.outcomes
    assert_accounted(report, len(bodies))
    for outcome in report.outcomes:
        assert outcome.reason != "internal-error", outcome
    assert len(seen.events.events) == report.emitted
    assert len(seen.dead.letters) == report.dead_lettered
    for event in seen.events.events:
        _assert_plausible(event, enqueued)
    return seen


PRICES = load_price_table()
ISO_MS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _assert_plausible(event: ChargebackEvent, enqueued: datetime | None) -> None:
    dims, values = event.dimensions, event.measurements
    assert all(isinstance(v, str) for v in dims.values())
    assert all(isinstance(v, float) for v in values.values())
    prompt, completion = values["PromptTokens"], values["CompletionTokens"]
    assert min(prompt, completion, values["CachedTokens"], values["ReasoningTokens"]) >= 0
    assert values["TotalTokens"] == prompt + completion
    assert values["CachedTokens"] <= prompt
    assert values["ReasoningTokens"] <= completion
    ceiling = ceiling_for(dims.get("Model"), dims.get("ApiOperation"), MAX_CHOICES)
    assert prompt + completion <= ceiling, dict(dims)
    price = PRICES.price_of(dims.get("Model"))
    dearest = 0.0 if price is None else max(price.input, price.cached_input, price.output)
    assert 0 <= values.get("Cost", 0.0) <= (prompt + completion) * dearest / PER_MILLION + 1e-12
    assert ISO_MS.fullmatch(dims["Timestamp"]), dims["Timestamp"]
    assert ISO_MS.fullmatch(event.to_json()["timestamp"])
    if "ReportedTimestamp" in dims:
        assert ISO_MS.fullmatch(dims["ReportedTimestamp"])
        assert dims["TimestampAdjusted"] in ("ahead-of-enqueued", "behind-enqueued")
        assert enqueued is not None and event.timestamp == enqueued
    elif enqueued is not None:
        assert -BEHIND <= event.timestamp - enqueued <= AHEAD
    else:
        assert 2000 <= event.timestamp.year < 2100


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


# --- Issue 16: times, usage, identities ---------------------------------------------------------

USAGE_ONLY: dict[str, Any] = {
    "Timestamp": "11/20/2026 10:00:00 AM",
    "ApiOperation": "ChatCompletions_Create",
    "AppKey": "0123456789abcdef0123456789abcdef",
    "PromptTokens": "120",
    "CompletionTokens": "80",
    "TotalTokens": "200",
}
BODIES: dict[str, Any] = {
    "eventTime": "2026-11-20T10:00:00Z",
    "apiOperation": "ChatCompletions_Create",
    "appSubscriptionKey": "fedcba9876543210fedcba9876543210",
}
TIME_FIELD = {"v1": "timestamp", "usage-only": "Timestamp", "bodies": "eventTime"}


def _message(shape: str, index: int, **fields: Any) -> bytes:
    if shape == "v1":
        base = _real(index)
    elif shape == "usage-only":
        base = dict(USAGE_ONLY)
    else:
        record = RECORDS[index % len(RECORDS)]
        base = {
            **BODIES,
            "request": json.dumps(record["request"]),
            "response": record["response_text"],
        }
    return json.dumps({**base, **fields}).encode()


def _utc_forms(moment: datetime, zone: int, digits: int) -> list[str]:
    """``moment`` (naive, read as UTC) in every form a policy writes (gateway/timestamps.py)."""
    hour12 = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    offset = f"{'-' if zone < 0 else '+'}{abs(zone) // 60:02d}:{abs(zone) % 60:02d}"
    fraction = f".{moment.microsecond:06d}777"[: digits + 1] if digits else ""
    return [
        moment.strftime("%m/%d/%Y %H:%M:%S"),
        f"{moment.month}/{moment.day}/{moment.year:04d} {hour12}:{moment:%M:%S} {meridiem}",
        f"{moment.month}/{moment.day}/{moment.year:04d} {hour12}:{moment:%M:%S}\u202f{meridiem}",
        f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z",
        f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}{fraction}{offset}",
        f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}",
    ]


ANY_MOMENT = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
ENQUEUED = st.none() | st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@FAST
@given(
    st.sampled_from(["v1", "usage-only", "bodies"]),
    records,
    st.tuples(
        ANY_MOMENT,
        st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
        st.integers(min_value=0, max_value=9),
    ),
    ENQUEUED,
    st.text(max_size=40),
)
def test_times_in_every_form_and_out_of_range(
    shape: str,
    index: int,
    when: tuple[datetime, int, int],
    enqueued: datetime | None,
    junk: str,
) -> None:
    """Every form, every year from 1 to 9999, any offset and any number of fraction digits,
    and junk: emitted with a four-digit ISO time settled against the enqueued time
    (`_assert_plausible`), or dead-lettered as malformed; never an internal error."""
    values = [*_utc_forms(*when), junk]
    bodies = [_message(shape, index, **{TIME_FIELD[shape]: value}) for value in values]
    for outcome in _process(*bodies, enqueued=enqueued):
        assert outcome.kind != "dead-lettered" or outcome.reason in ("malformed", "unknown-model")


NUMBER: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 2**53 - 1, 2**53, 2**53 + 1, 2**63, 2**64 + 1, 10**15, 10**30, -1]),
    st.floats(allow_nan=False, allow_infinity=False),  # json.dumps writes inf as Infinity
    st.booleans(),
    st.none(),
    st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,3})?", fullmatch=True),
    st.text(max_size=6),
)
COUNT_NAMES = [
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
]


@FAST
@given(
    records,
    st.dictionaries(st.sampled_from(COUNT_NAMES), NUMBER, max_size=4),
    st.none() | NUMBER,
    st.none() | NUMBER,
    st.booleans(),
)
def test_usage_across_the_whole_numeric_range(
    index: int,
    counts: dict[str, Any],
    cached: Any,
    reasoning: Any,
    responses: bool,
) -> None:
    """The policy's copy of usage (chat or Responses form) with counts of every kind and size:
    billed within the ceiling, estimated from the bodies, or dead-lettered."""
    usage: dict[str, Any] = dict(counts)
    details = (
        ("input_tokens_details", "output_tokens_details")
        if responses
        else (
            "prompt_tokens_details",
            "completion_tokens_details",
        )
    )
    if cached is not None:
        usage[details[0]] = {"cached_tokens": cached}
    if reasoning is not None:
        usage[details[1]] = {"reasoning_tokens": reasoning}
    for outcome in _process(
        json.dumps(_real(index, usage=False) | {"usage": usage}).encode(),
        json.dumps(
            _real(index, usage=False, requestBody=None, responseBody=None) | {"usage": usage}
        ).encode(),
    ):
        assert outcome.kind in ("emitted", "skipped") or outcome.reason in (
            "implausible-usage",
            "unknown-model",
            "unidentifiable",
        ), outcome


@FAST
@given(NUMBER, NUMBER, st.none() | NUMBER)
def test_legacy_counts_across_the_whole_numeric_range(
    prompt: Any, completion: Any, total: Any
) -> None:
    fields: dict[str, Any] = {"PromptTokens": prompt, "CompletionTokens": completion}
    fields["TotalTokens"] = total
    for as_text in (False, True):
        message = {k: str(v) if as_text else v for k, v in fields.items()}
        (outcome,) = _process(_message("usage-only", 0, **message))
        assert outcome.kind == "emitted" or outcome.reason in ("malformed", "implausible-usage")


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# A secret has many different characters, letters and digits mixed even in its last 12, so that
# its core cannot turn up in an output by chance (a run of zeros is in every timestamp; a run of
# letters can be a dimension's name: "0000letionTokens" ends like "CompletionTokens").
_SECRET_TEXT = st.text(alphabet=_B64, min_size=16, max_size=40).filter(
    lambda s: (
        len(set(s)) >= 10
        and sum(c.isdigit() for c in s[-12:]) >= 3
        and sum(c.isalpha() for c in s[-12:]) >= 3
    )
)
CREDENTIAL: st.SearchStrategy[str] = st.one_of(
    st.builds(lambda a, b, c: f"eyJ{a}.eyJ{b}.{c}", _SECRET_TEXT, _SECRET_TEXT, _SECRET_TEXT),
    st.builds(
        lambda a, b, c: f"Bearer eyJ{a}.eyJ{b}.{c}", _SECRET_TEXT, _SECRET_TEXT, _SECRET_TEXT
    ),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True).filter(lambda s: len(set(s)) >= 10),
    st.builds(lambda s: f"Bearer {s}", _SECRET_TEXT),
    st.builds(lambda s: f"api-key={s}", _SECRET_TEXT),
    st.builds(lambda s: f"Ocp-Apim-Subscription-Key: {s}", _SECRET_TEXT),
    st.builds(lambda s: f"sv=2024-08-04&sr=b&sig={s}", _SECRET_TEXT),
    st.builds(lambda s: f"sk-proj-{s}", _SECRET_TEXT),
)
V1_IDENTITY = [
    "requestId",
    "subscriptionId",
    "subscriptionName",
    "productId",
    "userId",
    "appId",
    "businessUnit",
    "endUser",
    "backendId",
    "region",
    "model",
    "method",
    "operationId",
    "url",
]


def _core(credential: str) -> str:
    """What no output may hold: all of the credential past the first 8 characters, which a key
    mask shows (a token's mask shows none); for a name=value, all of the value past them."""
    value = (
        re.split(r"[:=] ?", credential, maxsplit=1)[-1] if "eyJ" not in credential else credential
    )
    return value[8:] if len(value) > 20 else value[-12:]


@FAST
@given(
    st.sampled_from(["v1", "usage-only", "bodies"]),
    records,
    st.data(),
    CREDENTIAL,
    st.text(alphabet=" -:/", max_size=3),
)
def test_credentials_in_identity_fields_never_leave_the_process(
    shape: str, index: int, data: st.DataObject, credential: str, around: str
) -> None:
    if shape == "v1":
        name = data.draw(st.sampled_from(V1_IDENTITY))
    elif shape == "usage-only":
        name = data.draw(st.sampled_from(["AppKey", "ApiOperation"]))
    else:
        name = data.draw(st.sampled_from(["appSubscriptionKey", "apiOperation"]))
    value = f"{around}{credential}{around}"
    if name == "url":
        value = f"https://gw/openai/deployments/gpt-4o/chat/completions?api-version=1&x={value}"
    seen = _run(_message(shape, index, **{name: value}))
    assert _core(credential) not in seen.text(), (name, credential)
    assert "eyJhbGci" not in seen.text()
