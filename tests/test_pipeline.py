"""Issue #5, point 1: every message of a batch ends as exactly one of emitted, skipped with a
stated reason, or dead-lettered; one bad message never affects the others; each batch logs its
counts; a sink that fails raises so the batch is retried."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, NoReturn

import pytest

from chargeback.billing.pricing import Pricing, load_price_table
from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import DeadLetter, MemoryDeadLetters
from chargeback.errors import DeadLetterUnavailable, TelemetryNotAccepted
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings
from tests.support.accounting import assert_accounted
from tests.support.messages import v1_fields, v1_message


def _good(records: list[dict[str, Any]], n: int) -> list[bytes]:
    chosen = [r for r in records if r["status"] == 200 and r["usage"]][:n]
    return [v1_message(r, f"good-{i}") for i, r in enumerate(chosen)]


def _with_usage(record: dict[str, Any], request_id: str, usage: dict[str, Any]) -> bytes:
    """The record as the v1 policy sends it, with this copy of the usage."""
    fields = v1_fields(record, request_id, usage=False)
    return json.dumps({**fields, "usage": usage}).encode()


def _bad(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, str, str]]:
    """name -> (body, expected kind, expected reason)."""
    ok = next(r for r in records if r["status"] == 200 and r["usage"])
    failed = next(r for r in records if r["status"] == 400)
    return {
        "not-json": (b"\x00\xff not json", "dead-lettered", "malformed"),
        "array": (b"[1, 2, 3]", "dead-lettered", "malformed"),
        "no-shape": (b'{"hello": "world"}', "dead-lettered", "malformed"),
        "wrong-type": (
            v1_message(ok, "bad-type", statusCode="two hundred"),
            "dead-lettered",
            "malformed",
        ),
        "cut": (b'{"version": 1, "requestId": "cut-1", "timest', "dead-lettered", "unidentifiable"),
        "too-large": (b" " * 4096 + b"{}", "dead-lettered", "too-large"),
        "unknown-model": (
            v1_message(
                ok,
                "unknown-model",
                model=False,
                usage=False,
                url="https://gw/openai/deployments/mystery/chat/completions",
                requestBody=json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
                responseBody="",
            ),
            "dead-lettered",
            "unknown-model",
        ),
        "implausible-usage": (
            _with_usage(ok, "huge-1", {"prompt_tokens": 10**15, "completion_tokens": 1}),
            "dead-lettered",
            "implausible-usage",
        ),
        "failed-call": (v1_message(failed, "failed-1"), "skipped", "status-400"),
        "get": (v1_message(ok, "get-1", method="GET"), "skipped", "method-GET"),
        "not-billable": (
            v1_message(
                ok,
                "models-1",
                url="https://gw/openai/models",
                usage=False,
                model=False,
                requestBody="",
                responseBody="{}",
            ),
            "skipped",
            "not-billable-operation",
        ),
    }


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CHARGEBACK_MAX_MESSAGE_BYTES", "4000")
    return load_settings()


def _run(settings: Settings, bodies: list[bytes]) -> tuple[Any, MemorySink, MemoryDeadLetters]:
    events, dead = MemorySink(), MemoryDeadLetters()
    raws = [RawMessage(body, "1", i) for i, body in enumerate(bodies)]
    report = Processor(settings, events, dead).process_batch(raws)
    assert_accounted(report, len(bodies))
    return report, events, dead


def test_every_kind_of_message_ends_as_one_outcome(
    small: Settings, records: list[dict[str, Any]]
) -> None:
    good, bad = _good(records, 3), _bad(records)
    bodies = [good[0], *(body for body, _, _ in bad.values()), good[1], good[0], good[2]]
    report, events, dead = _run(small, bodies)
    got = [(o.kind, o.reason) for o in report.outcomes]
    assert got == [
        ("emitted", ""),
        *((kind, reason) for _, kind, reason in bad.values()),
        ("emitted", ""),
        ("skipped", "duplicate-in-batch"),
        ("emitted", ""),
    ]
    assert [e.dimensions["RequestId"] for e in events.events] == ["good-0", "good-1", "good-2"]
    assert events.sends == 1
    # A dead letter keeps the original bytes and its position.
    dead_bodies = [body for body, kind, _ in bad.values() if kind == "dead-lettered"]
    assert [letter.raw.body for letter in dead.letters] == dead_bodies
    assert all(letter.raw.partition == "1" for letter in dead.letters)


def test_one_bad_message_never_affects_the_others(
    small: Settings, records: list[dict[str, Any]]
) -> None:
    good = _good(records, 6)
    _, alone, _ = _run(small, good)
    mixed = []
    for i, body in enumerate(good):
        mixed.append(body)
        mixed.append(list(_bad(records).values())[i % 5][0])
    _, together, _ = _run(small, mixed)
    assert together.events == alone.events


class BuggyPricing(Pricing):
    """A stage with a bug: its error quotes what it was handling, as real errors do."""

    def charge(self, *args: object, **kwargs: object) -> NoReturn:
        raise KeyError("sk-secret-from-the-message")


def test_a_bug_dead_letters_the_message_without_quoting_it(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    good = _good(records, 3)
    dead = MemoryDeadLetters()
    raws = [RawMessage(body, "1", i) for i, body in enumerate(good)]
    pricing = BuggyPricing(load_price_table())
    report = Processor(settings, MemorySink(), dead, pricing=pricing).process_batch(raws)
    assert_accounted(report, 3)
    assert [o.reason for o in report.outcomes] == ["internal-error"] * 3
    assert [letter.raw.body for letter in dead.letters] == good  # kept, byte for byte
    for letter in dead.letters:
        assert letter.detail.startswith("KeyError at ")
        assert "sk-secret" not in letter.detail


def test_each_batch_logs_its_counts(
    small: Settings, records: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    bodies = [*_good(records, 2), b"nope", v1_message(records[0], "x", statusCode=404)]
    with caplog.at_level(logging.INFO, logger="chargeback"):
        _run(small, bodies)
    summary = [r.getMessage() for r in caplog.records if "chargeback batch" in r.getMessage()]
    assert summary == ["chargeback batch: received=4 emitted=2 skipped=1 dead_lettered=1"]


class _FailingDeadLetters:
    def put(self, letter: DeadLetter) -> None:
        raise DeadLetterUnavailable("store down")


class _FailingEvents(MemorySink):
    def send(self, events: Sequence[ChargebackEvent]) -> None:
        raise TelemetryNotAccepted("ingestion down")


def test_an_unwritable_dead_letter_store_fails_the_batch(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    processor = Processor(settings, MemorySink(), _FailingDeadLetters())
    with pytest.raises(DeadLetterUnavailable):
        processor.process_batch([RawMessage(b"nope"), RawMessage(_good(records, 1)[0])])


def test_events_not_accepted_fail_the_batch(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    processor = Processor(settings, _FailingEvents(), MemoryDeadLetters())
    with pytest.raises(TelemetryNotAccepted):
        processor.process_batch([RawMessage(body) for body in _good(records, 2)])


# --- The usage rules (issue 16), on the numbers the issue found billed as sent ----------------


def _chat(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        r
        for r in records
        if r["endpoint"] == "chat" and r["usage"] and (r["model"] or "").startswith("gpt-4o-mini")
    )


def test_the_usage_rules_on_the_issues_numbers(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = _chat(records)
    usages: list[dict[str, Any]] = [
        {"prompt_tokens": 10**15, "completion_tokens": 5, "total_tokens": 10**15 + 5},
        {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 2**52},
        {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4096},
        },
        {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "completion_tokens_details": {"reasoning_tokens": 10**12},
        },
        {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": -1},
        },
    ]
    bodies = [_with_usage(record, f"rules-{i}", u) for i, u in enumerate(usages)]
    report, events, dead = _run(settings, bodies)
    assert [(o.kind, o.reason) for o in report.outcomes] == [
        ("dead-lettered", "implausible-usage"),
        *[("emitted", "")] * 4,
    ]
    model = record["model"]
    assert dead.letters[0].detail == (
        f"1000000000000005 tokens in one call, above the ceiling of 144384 for model {model!r}"
        " (chat.completion operation; chargeback/tokens/ceilings.py)"
    )
    assert dead.letters[0].raw.body == bodies[0]  # kept as received, for a replay
    tokens = [
        {k: v for k, v in e.measurements.items() if k.endswith("Tokens")} for e in events.events
    ]
    base = {"PromptTokens": 12.0, "CompletionTokens": 5.0, "TotalTokens": 17.0}
    assert tokens == [
        {**base, "CachedTokens": 0.0, "ReasoningTokens": 0.0},
        {**base, "CachedTokens": 12.0, "ReasoningTokens": 0.0},
        {**base, "CachedTokens": 0.0, "ReasoningTokens": 5.0},
        {**base, "CachedTokens": 0.0, "ReasoningTokens": 0.0},
    ]
    assert [e.dimensions["UsageAdjusted"] for e in events.events] == [
        "total-recomputed",
        "cached-clamped",
        "reasoning-clamped",
        "cached-unreadable",
    ]
    assert [e.dimensions["TotalTokens"] for e in events.events] == ["17"] * 4
    price = load_price_table().price_of(model)
    assert price is not None
    # The whole prompt at the cached price: never a negative uncached part.
    assert events.events[1].measurements["Cost"] == pytest.approx(
        (12 * price.cached_input + 5 * price.output) / 1_000_000
    )


def test_unreadable_usage_is_estimated_from_the_bodies_and_flagged(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    """The policy's copy unreadable: the response's own usage when it has one, else an
    estimate that says why it is one."""
    with_usage = _chat(records)
    stream = next(r for r in records if r["endpoint"] == "chat" and r["stream"] and not r["usage"])
    unreadable: list[dict[str, Any]] = [
        {"prompt_tokens": -3, "completion_tokens": 5},
        {"prompt_tokens": "12", "completion_tokens": 5},
        {"prompt_tokens": 1.5},
        {"prompt_tokens": 2**64 + 1},  # JSON decodes it as a float: not a count
    ]
    for i, usage in enumerate(unreadable):
        _, events, _ = _run(
            settings,
            [_with_usage(with_usage, f"body-{i}", usage), _with_usage(stream, f"est-{i}", usage)],
        )
        from_body, estimated = events.events
        assert from_body.dimensions["TokenSource"] == "usage"
        assert from_body.measurements["PromptTokens"] == with_usage["usage"]["prompt_tokens"]
        assert estimated.dimensions["TokenSource"] == "estimated"
        assert "usage-unreadable" in estimated.dimensions["Estimate"].split(",")


def test_legacy_counts_follow_the_same_rules(settings: Settings) -> None:
    def legacy(prompt: str, completion: str, total: str) -> bytes:
        return json.dumps(
            {
                "Timestamp": "11/20/2026 10:00:00 AM",
                "ApiOperation": "ChatCompletions_Create",
                "AppKey": "0123456789abcdef0123456789abcdef",
                "PromptTokens": prompt,
                "CompletionTokens": completion,
                "TotalTokens": total,
            }
        ).encode()

    bodies = [
        legacy("120", "80", "4503599627370496"),
        legacy("1000000000000000", "1", "1000000000000001"),
        legacy("-5", "1", "1"),
        legacy("12.5", "1", "1"),
    ]
    report, events, dead = _run(settings, bodies)
    assert [(o.kind, o.reason) for o in report.outcomes] == [
        ("emitted", ""),
        ("dead-lettered", "implausible-usage"),
        ("dead-lettered", "malformed"),
        ("dead-lettered", "malformed"),
    ]
    (event,) = events.events
    assert (event.dimensions["TotalTokens"], event.dimensions["UsageAdjusted"]) == (
        "200",
        "total-recomputed",
    )
    assert dead.letters[1].detail == (
        "usage-only message: field PromptTokens: string of 2 characters, not a count (a whole"
        " number >= 0)"
    )
