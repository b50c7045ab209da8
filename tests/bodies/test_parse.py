"""Bodies: routes, JSON and SSE, Azure's stream quirks, CRLF, streams cut at every boundary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargeback.bodies import Exchange, parse_exchange, route
from chargeback.gateway import GatewayCall

FILTERS = {"hate": {"filtered": False, "severity": "safe"}}


def _call(request: dict[str, Any] | None, response: str | None, url: str, **kw: Any) -> GatewayCall:
    return GatewayCall(
        shape="v1",
        request_id="r",
        timestamp=datetime(2026, 11, 20, tzinfo=UTC),
        url=url,
        request_body=None if request is None else json.dumps(request),
        response_body=response,
        **kw,
    )


@pytest.mark.parametrize(
    ("url", "operation", "deployment", "version"),
    [
        (
            "https://gw/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            "chat.completion",
            "gpt-4o",
            "2024-10-21",
        ),
        (
            "https://gw/openai/deployments/inst/completions?api-version=1",
            "text_completion",
            "inst",
            "1",
        ),
        ("https://gw/openai/deployments/emb%20x/embeddings", "embeddings", "emb x", None),
        ("https://gw/openai/v1/chat/completions", "chat.completion", None, None),
        ("https://gw/openai/v1/responses", "responses", None, None),
        (
            "https://gw/openai/responses?api-version=2025-04-01-preview",
            "responses",
            None,
            "2025-04-01-preview",
        ),
        ("https://gw/aoai/openai/deployments/d/chat/completions/", "chat.completion", "d", None),
        ("https://gw/openai/v1/models", None, None, None),
        ("https://gw/openai/v1/responses/resp_123", None, None, None),
    ],
)
def test_route(
    url: str, operation: str | None, deployment: str | None, version: str | None
) -> None:
    found = route(url)
    assert (found.operation, found.deployment, found.api_version) == (
        operation,
        deployment,
        version,
    )


def test_v1_url_takes_the_deployment_from_the_body() -> None:
    exchange = parse_exchange(
        _call({"model": "my-gpt4o", "messages": []}, None, "https://gw/openai/v1/chat/completions")
    )
    assert exchange.deployment == "my-gpt4o"


def _azure_stream(line_end: str = "\n", usage: bool = True) -> str:
    """An Azure OpenAI chat stream as the docs show it."""
    chunks: list[dict[str, Any]] = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTERS}],
        },
        {
            "choices": [{"delta": {"content": "", "role": "assistant"}, "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
        {
            "choices": [{"delta": {"content": "Hello"}, "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
        {
            "choices": [{"delta": {"content": " world"}, "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
        {
            "choices": [{"content_filter_results": FILTERS, "finish_reason": None, "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
        {
            "choices": [{"delta": {}, "finish_reason": "stop", "index": 0}],
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": None,
        },
    ]
    if usage:
        chunks.append(
            {
                "choices": [],
                "model": "gpt-4o-2024-08-06",
                "object": "chat.completion.chunk",
                "usage": {
                    "prompt_tokens": 9,
                    "completion_tokens": 2,
                    "total_tokens": 11,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )
    blank = line_end * 2
    return "".join(f"data: {json.dumps(c)}{blank}" for c in chunks) + f"data: [DONE]{blank}"


def _stream_exchange(body: str) -> Exchange:
    request = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    return parse_exchange(
        _call(
            request,
            body,
            "https://gw/openai/deployments/gpt-4o/chat/completions",
            response_content_type="text/event-stream",
        )
    )


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_azure_stream_quirks(line_end: str) -> None:
    exchange = _stream_exchange(_azure_stream(line_end))
    assert exchange.stream is True
    assert exchange.operation == "chat.completion"
    assert exchange.response_model == "gpt-4o-2024-08-06"  # not the first chunk's ""
    assert exchange.usage is not None and exchange.usage["prompt_tokens"] == 9
    assert "".join(exchange.choices[0].text) == "Hello world"
    assert exchange.response_truncated is False
    assert exchange.notes == []


def test_stream_without_usage_keeps_the_text_for_estimation() -> None:
    exchange = _stream_exchange(_azure_stream(usage=False))
    assert exchange.usage is None
    assert "".join(exchange.choices[0].text) == "Hello world"
    assert exchange.response_truncated is False


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_stream_cut_at_every_chunk_boundary(line_end: str) -> None:
    body = _azure_stream(line_end)
    blank = line_end * 2
    boundaries = [i + len(blank) for i in range(len(body)) if body.startswith(blank, i)]
    assert len(boundaries) == 8
    texts = ["", "", "Hello", "Hello world", "Hello world", "Hello world", "Hello world"]
    for boundary, text in zip(boundaries[:-1], texts, strict=True):
        cut = _stream_exchange(body[:boundary])
        assert cut.response_truncated is True, boundary
        got = "".join(cut.choices[0].text) if cut.choices else ""
        assert got == text
        # The usage chunk is the 7th: only a cut after it keeps the reported usage.
        assert (cut.usage is not None) == (boundary >= boundaries[6])
    whole = _stream_exchange(body[: boundaries[-1]])
    assert whole.response_truncated is False


def test_stream_cut_inside_a_chunk() -> None:
    body = _azure_stream()
    cut_at = body.index(" world") + 3
    exchange = _stream_exchange(body[:cut_at])
    assert exchange.response_truncated is True
    assert "".join(exchange.choices[0].text) == "Hello"
    assert exchange.notes == []


def test_tool_call_deltas_are_joined() -> None:
    chunks = [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"arguments": '"Paris"}'}},
                            {
                                "index": 1,
                                "id": "c2",
                                "type": "function",
                                "function": {"name": "get_time", "arguments": "{}"},
                            },
                        ]
                    },
                }
            ]
        },
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    exchange = _stream_exchange(body)
    assert exchange.choices[0].tool_calls == [
        ["get_weather", '{"city":"Paris"}'],
        ["get_time", "{}"],
    ]


def test_responses_stream_reads_the_completed_usage(records: list[dict[str, Any]]) -> None:
    record = next(r for r in records if r["endpoint"] == "responses" and r["stream"] and r["usage"])
    exchange = parse_exchange(
        _call(record["request"], record["response_text"], "https://gw/openai/v1/responses")
    )
    assert exchange.operation == "responses"
    assert exchange.usage == record["usage"]
    assert exchange.response_truncated is False


def test_error_and_odd_bodies_never_raise() -> None:
    for body in ["", "{", "null", "[]", '{"choices": 5}', "data: {bad\n\n", "data: [DONE]"]:
        parse_exchange(_call({"messages": "x"}, body, "https://gw/openai/v1/chat/completions"))
