"""Issue #5, point 4: APIM cuts any message over 200 KB, outer JSON and all. Real messages are cut
at every length (a dense sample for the long ones) and run through the processor: each cut is
either billed from what its prefix holds, marked ``Truncated=true`` with the right identity and
never zero tokens, or dead-lettered as ``unidentifiable``. Never an exception, never skipped."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from chargeback.batches import Outcome
from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings
from tests.support.accounting import assert_accounted
from tests.support.messages import reported_tokens, v1_fields


def _first(records: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(r for r in records if r["status"] == 200 and test(r))


def _size(record: dict[str, Any]) -> int:
    return len(json.dumps(record["request"])) + len(record["response_text"])


class Cutter:
    """Runs every cut of one message through a processor, one cut a batch."""

    def __init__(self, settings: Settings) -> None:
        self.events = MemorySink()
        self.dead = MemoryDeadLetters()
        self.processor = Processor(settings, self.events, self.dead)

    def run(self, body: bytes, length: int) -> tuple[Outcome, ChargebackEvent | None]:
        if length == 0:  # nothing at all arrived: not a cut message, an empty one
            (outcome,) = self.processor.process_batch([RawMessage(b"", "0", 0)]).outcomes
            assert (outcome.kind, outcome.reason) == ("dead-lettered", "malformed")
            return Outcome("dead-lettered", "unidentifiable"), None
        before = len(self.events.events)
        report = self.processor.process_batch([RawMessage(body[:length], "0", length)])
        assert_accounted(report, 1)
        (outcome,) = report.outcomes
        event = self.events.events[-1] if len(self.events.events) > before else None
        assert (event is not None) == (outcome.kind == "emitted")
        return outcome, event


def _lengths(text: str, keys: Iterable[str], every: int) -> list[int]:
    """Every ``every``-th length, plus every length around each field's start and end."""
    chosen = set(range(0, len(text) + 1, every))
    for key in keys:
        start = text.index(f'"{key}": ')
        end = text.find(', "', start + len(key) + 4)
        end = len(text) - 1 if end < 0 else end
        for mark in (start, start + len(key) + 4, end):
            chosen.update(range(max(0, mark - 4), min(len(text), mark + 5)))
    chosen.add(len(text))
    return sorted(chosen)


def _check_v1_cuts(
    cutter: Cutter, fields: dict[str, Any], every: int, *, ascii_only: bool = True
) -> dict[str, int]:
    text = json.dumps(fields, ensure_ascii=ascii_only)
    body = text.encode()
    # Byte offsets of where each field ends (the text is ASCII unless ascii_only is False).
    identity_end = len(text[: text.index(', "operationId"')].encode())
    usage_end = len(text[: text.index(', "requestBody"')].encode()) if "usage" in fields else None
    lengths = range(len(body) + 1) if every == 1 else _lengths(text, fields, every)
    seen = {"emitted": 0, "dead-lettered": 0}
    for length in lengths:
        outcome, event = cutter.run(body, length)
        seen[outcome.kind] += 1
        if outcome.kind == "dead-lettered":
            assert outcome.reason == "unidentifiable", (length, outcome)
            assert length < len(body), "the whole message must be billed"
            assert usage_end is None or length < usage_end, (length, outcome)
            continue
        assert event is not None
        dims = event.dimensions
        assert length > identity_end, (length, dims)
        assert dims["RequestId"] == fields["requestId"]
        assert dims["BusinessUnit"] == "finance"
        assert dims["SubscriptionId"] == "finance-chatbot"
        assert dims["StatusCode"] == "200"
        assert dims["Truncated"] == ("false" if length == len(body) else "true"), length
        assert event.measurements["TotalTokens"] > 0, (length, dims)
        if usage_end is not None:
            # Before the policy's usage is whole no body has arrived: nothing to bill from.
            assert length >= usage_end, (length, dims)
        if usage_end is not None and length >= usage_end:
            # The policy's usage arrived whole: the call is billed exactly as reported.
            prompt, completion, total = reported_tokens(fields["usage"])
            assert dims["TokenSource"] == "usage", length
            assert (dims["PromptTokens"], dims["CompletionTokens"], dims["TotalTokens"]) == (
                str(prompt),
                str(completion),
                str(total),
            )
        elif dims["TokenSource"] == "estimated" and length < len(body):
            # Never a silent estimate from a cut message: the event says what is missing.
            assert "message-truncated" in dims["Estimate"], (length, dims)
    assert seen["emitted"] and seen["dead-lettered"], seen
    return seen


def test_short_chat_message_cut_at_every_length(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = _first(records, lambda r: r["endpoint"] == "chat" and not r["stream"] and r["usage"])
    _check_v1_cuts(Cutter(settings), v1_fields(record), every=1)


def test_stream_without_reported_usage_cut_at_every_length(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    """No usage to copy (a stream without include_usage): every bill is an estimate."""
    record = _first(records, lambda r: r["endpoint"] == "chat" and r["stream"] and not r["usage"])
    seen = _check_v1_cuts(Cutter(settings), v1_fields(record, usage=False), every=1)
    assert seen["emitted"] > seen["dead-lettered"]


def test_cut_inside_a_multibyte_character(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = _first(records, lambda r: r["endpoint"] == "chat" and not r["stream"] and r["usage"])
    record = {
        **record,
        "request": {
            **record["request"],
            "messages": [{"role": "user", "content": "Grüße, 你好, ça va? 🙂 " * 4}],
        },
    }
    _check_v1_cuts(Cutter(settings), v1_fields(record), every=1, ascii_only=False)


@pytest.mark.parametrize(
    ("endpoint", "stream"),
    [("chat", True), ("responses", False), ("responses", True), ("embeddings", False)],
)
@pytest.mark.parametrize("usage", [True, False], ids=["usage", "estimate"])
def test_long_messages_cut_densely(
    settings: Settings, records: list[dict[str, Any]], endpoint: str, stream: bool, usage: bool
) -> None:
    record = _first(
        records,
        lambda r: (
            r["endpoint"] == endpoint
            and r["stream"] == stream
            and r["usage"] is not None
            and 2000 < _size(r) < 12000
        ),
    )
    _check_v1_cuts(Cutter(settings), v1_fields(record, usage=usage), every=7)


def test_cut_inside_the_response_usage_is_not_billed_as_usage(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    """A cut inside the response body's own usage object must not bill a partial usage (e.g.
    prompt tokens only): the call is estimated and flagged instead."""
    record = _first(records, lambda r: r["endpoint"] == "chat" and not r["stream"] and r["usage"])
    text = json.dumps(v1_fields(record, usage=False))
    inside = text.index('\\"completion_tokens\\"')
    cutter = Cutter(settings)
    outcome, event = cutter.run(text.encode(), inside + 5)
    assert outcome.kind == "emitted" and event is not None
    assert event.dimensions["TokenSource"] == "estimated"
    assert "message-truncated" in event.dimensions["Estimate"]


def test_usage_only_message_cut_at_every_length(settings: Settings) -> None:
    fields = {
        "Timestamp": "2026-11-20T10:00:00Z",
        "ApiOperation": "ChatCompletions_Create",
        "AppKey": "0123456789abcdef0123456789abcdef",
        "PromptTokens": "23",
        "CompletionTokens": "11",
        "TotalTokens": "34",
    }
    text = json.dumps(fields)
    completion_end = text.index(', "TotalTokens"')
    cutter = Cutter(settings)
    for length in range(len(text) + 1):
        outcome, event = cutter.run(text.encode(), length)
        if length < completion_end:
            assert (outcome.kind, outcome.reason) == ("dead-lettered", "unidentifiable"), length
            continue
        assert event is not None, length
        assert event.measurements["PromptTokens"] == 23
        assert event.measurements["CompletionTokens"] == 11
        assert event.measurements["TotalTokens"] == 34
        assert event.dimensions["AppKey"] == "01234567XXXX"
        assert event.dimensions["Truncated"] == ("false" if length == len(text) else "true")


def test_bodies_shape_cut_at_every_length(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = _first(records, lambda r: r["endpoint"] == "chat" and not r["stream"] and r["usage"])
    fields = {
        "eventTime": "2026-11-20T10:00:00Z",
        "apiOperation": "ChatCompletions_Create",
        "appSubscriptionKey": "fedcba9876543210fedcba9876543210",
        "request": json.dumps(record["request"]),
        "response": record["response_text"],
    }
    text = json.dumps(fields)
    request_start = text.index('"request": ')
    cutter = Cutter(settings)
    for length in range(len(text) + 1):
        outcome, event = cutter.run(text.encode(), length)
        if outcome.kind == "dead-lettered":
            assert outcome.reason == "unidentifiable", (length, outcome)
            assert length < len(text)
            continue
        assert event is not None
        assert length > request_start
        assert event.dimensions["AppKey"] == "fedcba98XXXX"
        assert event.measurements["TotalTokens"] > 0
        if length < len(text):
            assert event.dimensions["Truncated"] == "true"
            if event.dimensions["TokenSource"] == "estimated":
                assert "message-truncated" in event.dimensions["Estimate"]
    *_, total = reported_tokens(record["usage"])
    assert event is not None and event.measurements["TotalTokens"] == total
