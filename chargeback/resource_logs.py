"""API Management's resource logs (CONTRACTS §1d) as calls.

A diagnostic setting streams two records per call to Event Hubs: a ``GatewayLlmLogs`` record with
the tokens API Management counted (streamed calls included, without buffering the stream) and a
``GatewayLogs`` record with who made the call. `chargeback.gateway.resource_logs` reads them;
here each becomes one half of a call: the tokens half (``TokenSource=gateway``, no caller) and the
identity half (no tokens, no ``TokenSource``), each with ``LogCategory`` naming its record. The
halves arrive in any order, in any batch, maybe never: nothing waits for the other. The queries
merge every row of one ``RequestId`` (the LLM log's CorrelationId is the gateway's
``context.RequestId``, the v1 message's ``requestId``: docs/llm-logs.md) with one precedence for
tokens, the API's own usage > the gateway's LLM log > an estimate, and identity from whichever
row carries it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeback.bodies import Exchange, route
from chargeback.errors import MalformedMessage
from chargeback.gateway import GatewayCall
from chargeback.gateway.resource_logs import (
    CATEGORY_GATEWAY,
    CATEGORY_LLM,
    GatewayIdentity,
    LlmUsage,
)
from chargeback.gateway.timestamps import call_time
from chargeback.tokens import TokenCounts

__all__ = ["LogCall", "is_resource_logs", "log_call", "not_billable"]

#: Azure Monitor's envelope opens with its one member (a v1 message never has "records").
_ENVELOPE = re.compile(rb'\A\s*\{\s*"records"\s*:')


def is_resource_logs(body: bytes) -> bool:
    """Whether a message is a resource-log envelope, told from its first bytes."""
    return _ENVELOPE.match(body) is not None


@dataclass(frozen=True, slots=True)
class LogCall:
    """One half of a call, ready to price and emit. ``counts`` is None for the identity half."""

    call: GatewayCall
    exchange: Exchange
    counts: TokenCounts | None
    category: str


def log_call(record: LlmUsage | GatewayIdentity, enqueued: datetime | None) -> LogCall:
    """The half of a call one record gives, its time settled against the time Event Hubs
    enqueued the message (as for every shape: `chargeback.gateway.timestamps.call_time`).
    Raises `MalformedMessage` for a record that cannot be billed as it is."""
    moment, why = call_time(record.time, enqueued, "time")
    times: dict[str, Any] = {"timestamp": moment}
    if why is not None:
        times.update(reported_timestamp=record.time, timestamp_adjusted=why)
    if isinstance(record, LlmUsage):
        return _tokens_half(record, times)
    return _identity_half(record, times)


def not_billable(record: GatewayIdentity) -> str | None:
    """Why a GatewayLogs record is no chargeback call (the stated reason of the skip), or None.
    The gateway logs every API it serves; only successful POSTs to an OpenAI operation bill."""
    if record.status_code is not None and not 200 <= record.status_code < 300:
        return f"status-{record.status_code}"
    if record.method and record.method.upper() != "POST":
        return f"method-{record.method.upper()}"
    if route(record.url).operation is None:
        return "not-billable-operation"
    return None


def _tokens_half(record: LlmUsage, times: dict[str, Any]) -> LogCall:
    prompt, completion = record.prompt_tokens, record.completion_tokens
    if prompt is None or completion is None:
        missing = "promptTokens" if prompt is None else "completionTokens"
        raise MalformedMessage(f"{CATEGORY_LLM} record has no {missing}")
    total = prompt + completion if record.total_tokens is None else record.total_tokens
    call = GatewayCall(
        shape="resource-logs",
        request_id=record.correlation_id,
        region=record.region,
        model=record.model,
        **times,
    )
    exchange = Exchange(None, record.deployment, record.api_version, stream=bool(record.stream))
    counts = TokenCounts(prompt, completion, total, record.cached_tokens or 0, source="gateway")
    return LogCall(call, exchange, counts, CATEGORY_LLM)


def _identity_half(record: GatewayIdentity, times: dict[str, Any]) -> LogCall:
    where = route(record.url)
    call = GatewayCall(
        shape="resource-logs",
        request_id=record.correlation_id,
        url=record.url,
        method=record.method,
        status_code=record.status_code,
        operation_id=record.operation_id,
        api_id=record.api_id,
        product_id=record.product_id,
        subscription_id=record.subscription_id,
        user_id=record.user_id,
        client_ip=record.caller_ip,
        backend_id=record.backend_id,
        region=record.region,
        **times,
    )
    exchange = Exchange(where.operation, where.deployment, where.api_version)
    return LogCall(call, exchange, None, CATEGORY_GATEWAY)
