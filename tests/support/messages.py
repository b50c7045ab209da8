"""Gateway messages for tests, built from the recorded exchanges in tests/data as the APIM
policy sends them: small fields first, bodies last (CONTRACTS §1a)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDS = Path(__file__).resolve().parents[1] / "data" / "recorded-exchanges.jsonl"
#: Records of other projects, copied verbatim from ../shared/corpus/recorded-exchanges-more.jsonl
#: (held out: the estimation rules were fitted on RECORDS); see tests/data/README.md.
HELD_OUT = Path(__file__).resolve().parents[1] / "data" / "held-out-sample.jsonl"
PATHS = {
    "chat": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}


def load_records() -> list[dict[str, Any]]:
    with RECORDS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def v1_fields(
    record: dict[str, Any],
    request_id: str = "req-1",
    *,
    model: bool = True,
    usage: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A recorded exchange as the v1 policy writes it (CONTRACTS §1a), fields in its order.

    ``model`` and ``usage`` copy them from the recording as the policy does; turn them off to make
    the bodies alone carry them.
    """
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


def v1_message(record: dict[str, Any], request_id: str = "req-1", **kw: Any) -> bytes:
    return json.dumps(v1_fields(record, request_id, **kw)).encode()


def reported_tokens(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, total) as the API reported them, chat or Responses form, with the
    total the usage rules bill: prompt + completion (the API's own total differs only in two
    recorded Gemini responses, which tests/guarantees/test_recorded.py pins)."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    assert isinstance(prompt, int) and isinstance(completion, int)
    return prompt, completion, prompt + completion
