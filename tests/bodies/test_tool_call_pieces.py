"""Streamed tool-call arguments arrive a few characters a chunk. Adding each piece to a string
held in a list copies the whole string every time (quadratic: 2 s for 100,000 pieces); the
pieces are kept in a list and joined once, a cost that is plainly linear in the pieces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargeback.bodies import Choice, Exchange, parse_exchange
from chargeback.bodies.exchange import read_message_delta
from chargeback.gateway import GatewayCall

PIECES = 100_000


def _delta(arguments: str, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    return {"tool_calls": [{"index": 0, "function": function}]}


def test_pieces_are_appended_to_a_list_and_joined_once() -> None:
    choice = Choice()
    read_message_delta(_delta("", "get_weather"), choice)
    for _ in range(PIECES):
        read_message_delta(_delta("ab"), choice)
    # One list append per piece, and no string built yet: nothing was copied per piece.
    assert choice.tool_calls == [["", ""]]
    names, arguments = choice.pieces[0]
    assert (names, len(arguments)) == (["get_weather"], PIECES)
    choice.settle()  # one join
    assert choice.tool_calls == [["get_weather", "ab" * PIECES]]
    assert choice.pieces == {}


def _call(request: dict[str, Any], response: str, url: str) -> GatewayCall:
    return GatewayCall(
        shape="v1",
        request_id="r",
        timestamp=datetime(2026, 11, 20, tzinfo=UTC),
        url=url,
        request_body=json.dumps(request),
        response_body=response,
        response_content_type="text/event-stream",
    )


def _chat_stream(line_end: str) -> str:
    head = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06"}
    first = {"index": 0, "delta": {"role": "assistant", **_delta("", "get_weather")}}
    chunks = [{**head, "choices": [first]}]
    piece = {**head, "choices": [{"index": 0, "delta": _delta("ab")}]}
    lines = [json.dumps(chunk) for chunk in chunks] + [json.dumps(piece)] * PIECES
    return "".join(f"data: {line}{line_end}{line_end}" for line in lines) + "data: [DONE]\n\n"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])  # joined decode, and line by line
def test_a_chat_stream_of_100000_pieces_reads_whole(line_end: str) -> None:
    request = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "?"}]}
    url = "https://gw/openai/deployments/gpt-4o/chat/completions"
    exchange = parse_exchange(_call(request, _chat_stream(line_end), url))
    assert exchange.choices[0].tool_calls == [["get_weather", "ab" * PIECES]]
    assert exchange.choices[0].pieces == {}


def _responses_stream() -> str:
    item = {"type": "function_call", "name": "get_weather", "arguments": ""}
    events = [{"type": "response.output_item.added", "output_index": 0, "item": item}]
    delta = {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "ab"}
    events += [delta] * PIECES
    return "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events)


def test_a_responses_stream_of_100000_pieces_reads_whole() -> None:
    request = {"model": "gpt-4o", "stream": True, "input": "?"}
    exchange: Exchange = parse_exchange(
        _call(request, _responses_stream(), "https://gw/openai/v1/responses")
    )
    assert exchange.choices[0].tool_calls == [["get_weather", "ab" * PIECES]]
