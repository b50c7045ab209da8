"""Helpers shared by the reliability tests: the account every batch must balance, and gateway
messages in the order the APIM policy writes their fields (small fields first, bodies last)."""

from __future__ import annotations

import json
from typing import Any

from messages import PATHS

from chargeback.pipeline import BatchReport

OUTCOMES = {"emitted", "skipped", "dead-lettered"}


def assert_accounted(report: BatchReport, received: int) -> None:
    """Every message ended as exactly one of emitted, skipped (with a reason) or dead-lettered."""
    assert report.received == received
    assert report.received == report.emitted + report.skipped + report.dead_lettered
    for outcome in report.outcomes:
        assert outcome.kind in OUTCOMES
        if outcome.kind != "emitted":
            assert outcome.reason, outcome


def policy_fields(
    record: dict[str, Any],
    request_id: str = "req-1",
    *,
    model: bool = True,
    usage: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A recorded exchange as the v1 policy writes it (CONTRACTS §1a), fields in its order."""
    fields: dict[str, Any] = {
        "version": 1,
        "requestId": request_id,
        "timestamp": "2026-11-20T10:00:00.123Z",
        "method": "POST",
        "url": f"https://gw.contoso.com/openai/v1/{PATHS[record['endpoint']]}",
        "statusCode": record["status"],
        "operationId": "op",
        "apiId": "azure-openai",
        "productId": "finance",
        "subscriptionId": "finance-chatbot",
        "subscriptionName": "Finance chatbot",
        "businessUnit": "finance",
        "backendId": "aoai-eastus",
        "region": "East US",
        "responseContentType": "text/event-stream" if record["stream"] else "application/json",
    }
    name = record.get("model") or record["request"].get("model")
    if model and name:
        fields["model"] = name
    if usage and record.get("usage"):
        fields["usage"] = record["usage"]
    fields["requestBody"] = json.dumps(record["request"])
    fields["responseBody"] = record["response_text"]
    fields.update(overrides)
    return fields


def policy_message(record: dict[str, Any], request_id: str = "req-1", **kw: Any) -> bytes:
    return json.dumps(policy_fields(record, request_id, **kw)).encode()


def reported_tokens(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, total) as the API reported them, chat or Responses form."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return int(prompt), int(completion), int(usage["total_tokens"])
