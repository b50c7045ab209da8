"""The benchmark's messages as the APIM policy (``infra/apim/chargeback-outbound.xml``) writes
them: v1 messages, small fields first, ``usage`` and ``model`` copied out of the response, bodies
trimmed so that the message stays under 200 KB."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from chargeback.tools.recordings import ENDPOINT_PATHS

__all__ = ["POLICY_LIMIT", "dumps", "policy_message", "wrap"]

#: The policy keeps a message under APIM's 200 KB log-to-eventhub limit, with 2 KB spare.
POLICY_LIMIT = 200 * 1024 - 2048

_API_VERSION = "2024-10-21"


def dumps(value: Any) -> str:
    # Newtonsoft's Formatting.None: no spaces, non-ASCII as is.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _reported(response_body: str, stream: bool) -> tuple[Any, str | None]:
    """The usage and model the policy copies out of the response (the same search it makes)."""
    reported: Any = None
    try:
        if stream:
            for raw_line in reversed(response_body.split("\n")):
                line = raw_line.strip()
                if line.startswith("data:") and '"usage":{' in line.replace(" ", ""):
                    reported = json.loads(line[5:].strip())
                    break
        elif response_body.lstrip().startswith("{"):
            reported = json.loads(response_body)
    except ValueError:
        return None, None
    if isinstance(reported, dict) and isinstance(reported.get("response"), dict):
        reported = reported["response"]
    if not isinstance(reported, dict):
        return None, None
    usage = reported.get("usage") if isinstance(reported.get("usage"), dict) else None
    model = reported.get("model") if isinstance(reported.get("model"), str) else None
    return usage, model


def policy_message(
    *,
    request_id: str,
    timestamp: datetime,
    url: str,
    status: int,
    stream: bool,
    request_body: str,
    response_body: str,
    subscription: str = "finance-chatbot",
    business_unit: str = "finance",
) -> bytes:
    """A v1 message as ``infra/apim/chargeback-outbound.xml`` writes it, trimmed as it trims."""
    usage, model = _reported(response_body, stream)
    message: dict[str, Any] = {
        "version": 1,
        "requestId": request_id,
        "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{timestamp.microsecond // 1000:03d}Z",
        "method": "POST",
        "url": url,
        "statusCode": status,
        "operationId": _OPERATION_IDS.get(url.rsplit("/", 1)[-1].split("?", 1)[0]),
        "apiId": "azure-openai",
        "productId": business_unit,
        "subscriptionId": subscription,
        "subscriptionName": subscription.replace("-", " ").title(),
        "userId": "1",
        "appId": None,
        "businessUnit": business_unit,
        "endUser": None,
        "clientIp": "10.1.2.3",
        "backendId": "aoai-eastus",
        "region": "East US",
        "responseContentType": "text/event-stream" if stream else "application/json",
    }
    if model is not None:
        message["model"] = model
    if usage is not None:
        message["usage"] = usage
    message["requestBody"] = request_body
    message["responseBody"] = response_body
    text = dumps(message).encode()
    over = len(text) - POLICY_LIMIT
    if over > 0:
        response_first = len(response_body) >= len(request_body)
        first, second = (
            (response_body, request_body) if response_first else (request_body, response_body)
        )
        cut_first = min(over, len(first))
        first = first[: len(first) - cut_first]
        second = second[: len(second) - min(over - cut_first, len(second))]
        message["requestBody"] = second if response_first else first
        message["responseBody"] = first if response_first else second
        text = dumps(message).encode()
    return text


_OPERATION_IDS = {
    "completions": "ChatCompletions_Create",
    "embeddings": "embeddings_create",
    "responses": "responses_create",
}


def _url(record: dict[str, Any], deployment: str) -> str:
    path = ENDPOINT_PATHS[record["endpoint"]]
    return (
        f"https://gw.contoso.com/openai/deployments/{deployment}/{path}?api-version={_API_VERSION}"
    )


def _deployment(record: dict[str, Any]) -> str:
    model = record["request"].get("model") or record.get("model") or "gpt-4o"
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", str(model))


def wrap(record: dict[str, Any], request_id: str, timestamp: datetime) -> bytes:
    return policy_message(
        request_id=request_id,
        timestamp=timestamp,
        url=_url(record, _deployment(record)),
        status=record["status"],
        stream=bool(record["stream"]),
        request_body=dumps(record["request"]),
        response_body=record.get("response_text") or "",
    )
