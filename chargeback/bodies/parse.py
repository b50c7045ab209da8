"""Stage 3: the OpenAI request and response bodies of a call, as one `Exchange`.

Handles the four billable operations (chat completions, legacy completions, embeddings, the
Responses API), as JSON and as server-sent events (`chargeback.bodies.streams`).
"""

from __future__ import annotations

from typing import Any

from chargeback._values import as_list
from chargeback.bodies.exchange import (
    Exchange,
    choice_index,
    read_message_delta,
    read_response_output,
    take_model,
)
from chargeback.bodies.routes import (
    RESPONSE_OBJECTS,
    operation_from_id,
    operation_from_request,
    route,
)
from chargeback.bodies.streams import is_stream, parse_stream, response_cut
from chargeback.gateway import GatewayCall, jsontext

__all__ = ["parse_exchange"]


def parse_exchange(call: GatewayCall, *, texts: bool = True, response: bool = True) -> Exchange:
    """Parse the bodies of a call. Never raises on bad bodies: it notes what it could not read.

    With ``texts=False`` (the call's usage is already known, so nothing will be counted) what
    the model wrote is not collected: ``choices`` stays empty; everything else is the same.

    With ``response=False`` as well (the gateway message carries the usage and the model, so
    nothing the response holds is needed) the response body is not decoded when a look at it
    tells what the event needs of it, whether it streams and whether it was cut short
    (`response_cut`, the same answer the full read gives); then ``response_model``, ``usage``
    and the response's notes stay unset. When the look cannot tell, or the operation is still
    unknown after the URL and the operation id, the response is read as with ``texts=False``.
    """
    where = route(call.url)
    exchange = Exchange(where.operation, where.deployment, where.api_version)
    exchange.request = _parse_request(call.request_body, exchange)
    if exchange.operation is None:
        exchange.operation = operation_from_id(call.operation_id)
    if exchange.request is not None:
        exchange.stream = exchange.request.get("stream") is True
        if exchange.deployment is None and isinstance(exchange.request.get("model"), str):
            # The v1 API (/openai/v1/...) names the deployment in the body's "model".
            exchange.deployment = exchange.request["model"]
    body = call.response_body
    if body:
        content_type = call.response_content_type
        if response or exchange.operation is None:
            _parse_response(body, content_type, exchange, texts and response)
        else:
            stream = is_stream(body, content_type)
            cut = response_cut(body, stream)
            if cut is None:
                _parse_response(body, content_type, exchange, False)
            else:
                exchange.stream = exchange.stream or stream
                exchange.response_truncated = cut
    if exchange.operation is None:
        exchange.operation = operation_from_request(exchange.request)
    exchange.settle()
    return exchange


#: Members whose cut-short value still counts (text arrived, more was cut). Any other member
#: cut short (a model name, a usage object) is not what was sent, and is dropped.
_CONTENT = frozenset({"messages", "input", "prompt", "instructions", "choices", "output", "data"})


def _drop_cut_member(value: dict[str, Any], last_cut: bool) -> None:
    if last_cut and value and next(reversed(value)) not in _CONTENT:
        value.popitem()


def _parse_request(body: str | None, exchange: Exchange) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value, truncated, last_cut = jsontext.loads_prefix(body)
    except (ValueError, RecursionError):
        exchange.notes.append("request-unreadable")
        return None
    exchange.request_truncated = truncated
    if not isinstance(value, dict):
        exchange.notes.append("request-unreadable")
        return None
    _drop_cut_member(value, last_cut)
    return value


def _parse_response(
    body: str, content_type: str | None, exchange: Exchange, texts: bool = True
) -> None:
    if is_stream(body, content_type):
        exchange.stream = True
        parse_stream(body, exchange, texts)
        return
    try:
        value, truncated, last_cut = jsontext.loads_prefix(body)
    except (ValueError, RecursionError):
        exchange.notes.append("response-unreadable")
        return
    exchange.response_truncated = truncated
    if isinstance(value, dict):
        _drop_cut_member(value, last_cut)
        _read_response_object(value, exchange, texts)


# --- Whole JSON responses -------------------------------------------------------------------


def _read_response_object(body: dict[str, Any], exchange: Exchange, texts: bool = True) -> None:
    kind = body.get("object")
    if exchange.operation is None and isinstance(kind, str):
        exchange.operation = RESPONSE_OBJECTS.get(kind)
    take_model(body.get("model"), exchange)
    if isinstance(body.get("usage"), dict):
        exchange.usage = body["usage"]
    if not texts:
        return
    if kind == "response" or exchange.operation == "responses":
        read_response_output(body.get("output"), exchange)
        return
    for position, choice in enumerate(as_list(body.get("choices"))):
        if not isinstance(choice, dict):
            continue
        target = exchange.choice(choice_index(choice, position))
        if isinstance(choice.get("text"), str):
            target.text.append(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            read_message_delta(message, target)
