"""Gateway messages for tests, built from the recorded exchanges in tests/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDS = Path(__file__).parent / "data" / "recorded-exchanges.jsonl"
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
    record: dict[str, Any], request_id: str = "req-1", **overrides: Any
) -> dict[str, Any]:
    """A recorded exchange as the APIM policy sends it (CONTRACTS §1a), v1 URL form."""
    fields = {
        "version": 1,
        "requestId": request_id,
        "timestamp": "2026-11-20T10:00:00.123Z",
        "method": "POST",
        "url": f"https://gw.contoso.com/openai/v1/{PATHS[record['endpoint']]}",
        "statusCode": record["status"],
        "subscriptionId": "finance-chatbot",
        "businessUnit": "finance",
        "responseContentType": "text/event-stream" if record["stream"] else "application/json",
        "requestBody": json.dumps(record["request"]),
        "responseBody": record["response_text"],
    }
    fields.update(overrides)
    return fields


def v1_message(record: dict[str, Any], request_id: str = "req-1", **overrides: Any) -> bytes:
    return json.dumps(v1_fields(record, request_id, **overrides)).encode()
