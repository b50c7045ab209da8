"""`response_cut`, the look that replaces decoding the response when the gateway message carries
the usage and the model: wherever it answers, it gives the answer the full read gives, on every
recorded response, whole and cut, and the exchange it leaves serves the event the same."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chargeback.bodies import Exchange, parse_exchange
from chargeback.bodies import response_cut as cheap_cut
from chargeback.bodies.parse import _parse_response
from chargeback.bodies.streams import is_stream
from chargeback.gateway import GatewayCall
from tests.support.messages import load_records

RECORDS = [r for r in load_records() if r.get("response_text")]
URLS = {
    "chat": "https://gw/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    "embeddings": "https://gw/openai/deployments/emb/embeddings?api-version=2024-10-21",
    "responses": "https://gw/openai/responses?api-version=2025-04-01-preview",
}


def _full_cut(body: str, content_type: str | None) -> bool:
    exchange = Exchange(None, None, None)
    _parse_response(body, content_type, exchange, False)
    return exchange.response_truncated


def _content_type(record: dict[str, Any]) -> str:
    return "text/event-stream" if record["stream"] else "application/json"


def _cuts(text: str, rng: random.Random) -> list[str]:
    """The whole text and prefixes of it: every cut in the last 40 characters, right after each
    of the last few line breaks, brackets and quotes, and a few anywhere."""
    ends = {len(text)} | {len(text) - k for k in range(1, 41)}
    for mark in ("\n", "}", "]", '"', "\r"):
        position = len(text)
        for _ in range(4):
            position = text.rfind(mark, 0, position)
            if position < 0:
                break
            ends |= {position, position + 1}
    ends |= {rng.randrange(len(text) + 1) for _ in range(12)}
    return [text[:end] for end in sorted(ends) if end > 0]


def _variants(record: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(body, content type): as recorded, and for a stream with CRLF line ends and with no
    content type (found by its first line)."""
    text = record["response_text"]
    if record["stream"]:
        return [
            (text, "text/event-stream"),
            (text.replace("\n", "\r\n"), "text/event-stream"),
            (text, None),
        ]
    return [(text, "application/json"), (text, "text/event-stream")]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r['endpoint']}-{r['file']}")
def test_the_look_gives_the_full_reads_answer_on_every_record_and_its_cuts(
    record: dict[str, Any],
) -> None:
    rng = random.Random(record["file"])
    for text, content_type in _variants(record):
        for body in _cuts(text, rng):
            stream = is_stream(body, content_type)
            cheap = cheap_cut(body, stream)
            if cheap is not None:
                assert cheap == _full_cut(body, content_type), (content_type, body[-120:])


def test_the_look_answers_for_the_usual_bodies() -> None:
    """Whole streams (every recorded stream of a successful call the full read finds whole)
    and streams cut mid-line, whole or cut Responses streams and cut JSON are told without a
    decode (a JSON body that ends with its bracket is not: it may be cut right
    after an inner one)."""
    answered = {"stream-whole": 0, "stream-cut": 0, "json-cut": 0}
    records = [
        r
        for r in RECORDS
        if r["status"] == 200 and not _full_cut(r["response_text"], _content_type(r))
    ]
    for record in records:
        text = record["response_text"]
        if record["stream"]:
            answered["stream-whole"] += cheap_cut(text, True) is False
            answered["stream-cut"] += cheap_cut(text[: len(text) * 2 // 3], True) is True
        else:
            middle = text.index('"', len(text) // 2) + 1  # a cut after a quote
            answered["json-cut"] += cheap_cut(text[:middle], False) is True
    streams = sum(1 for r in records if r["stream"])
    assert answered == {
        "stream-whole": streams,
        "stream-cut": streams,
        "json-cut": len(records) - streams,
    }


@pytest.mark.parametrize(
    ("body", "cut"),
    [
        ('data: {"a":1}\n\ndata: [DONE]\n\n', False),
        ('data: {"a":1}\r\n\r\ndata:[DONE]', False),
        ('data: {"a":1}\n\ndata: {"b"', True),
        ('data: {"a":1}\n\n', True),  # no [DONE]: a chat stream cut between events
        ('data: {"a":1}\n\ndata: [DO', True),
        ('event: response.completed\ndata: {"type":"response.completed","response":{}}\n\n', False),
        ('event: response.completed\ndata: {"type":"response.completed","respo', True),
        ('data: {"type":"response.completed","response":1}\n\n', None),
        ('data: {"a":"x [DONE]"}\n\n', None),  # not a [DONE] line: the full read decides
        ('data: {"type":"response\\u002ecompleted","response":{}}\n\n', False),
        ('data: {"a":"\\u0041"}\n\ndata: {"b', True),
        ('data: {"a":"\\u0041"}\n\n', None),  # an escape could spell a terminal event
        ('data: {"a":"x\u2028y"}\n\ndata: {"b', True),
        ('data: {"a":1}\n\ndata: {"b":"x\u2028y', True),
    ],
)
def test_stream_cases(body: str, cut: bool | None) -> None:
    assert cheap_cut(body, True) is cut
    if cut is not None:
        assert _full_cut(body, "text/event-stream") is cut


@pytest.mark.parametrize(
    ("body", "cut"),
    [
        ('{"a":1}', None),
        ('{"a":{"b":1}', None),  # cut right after an inner object
        ('{"a":1', True),
        ('{"a":"x', True),
        ('{"a":1}\n', None),
        ("[1,2", True),
    ],
)
def test_json_cases(body: str, cut: bool | None) -> None:
    assert cheap_cut(body, False) is cut
    if cut is not None:
        assert _full_cut(body, "application/json") is cut


@pytest.mark.parametrize("record", RECORDS[::7], ids=lambda r: f"{r['endpoint']}-{r['file']}")
def test_without_the_response_the_exchange_serves_the_event_the_same(
    record: dict[str, Any],
) -> None:
    """What the event takes from the exchange (operation, deployment, api-version, Stream,
    Truncated) is the same whether the response is decoded or only looked at."""
    rng = random.Random(record["file"])
    request = json.dumps(record["request"])
    call = GatewayCall(
        shape="v1",
        request_id="r",
        timestamp=datetime(2026, 11, 20, tzinfo=UTC),
        url=URLS[record["endpoint"]],
        request_body=request,
        response_content_type=_content_type(record),
        model="gpt-4o",
    )
    for text, content_type in _variants(record):
        for body in _cuts(text, rng)[::5]:
            assert call.url is not None
            for url in (call.url, "https://gw/openai/v1/" + call.url.rsplit("/", 1)[-1], None):
                this = replace(
                    call, url=url, response_body=body, response_content_type=content_type
                )
                full = parse_exchange(this, texts=False)
                looked = parse_exchange(this, texts=False, response=False)
                assert _seen(looked) == _seen(full)


def _seen(exchange: Exchange) -> tuple[Any, ...]:
    truncated = exchange.request_truncated or exchange.response_truncated
    return (
        exchange.operation,
        exchange.deployment,
        exchange.api_version,
        exchange.stream,
        truncated,
    )
