"""API Management resource-log records (CONTRACTS §1d) in their documented shape, for the tests;
where each shape comes from is in tests/gateway/test_resource_logs.py's docstring."""

from __future__ import annotations

import copy
import json
from typing import Any

RESOURCE = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-AI"
    "/PROVIDERS/MICROSOFT.APIMANAGEMENT/SERVICE/APIM-CONTOSO"
)
CALL = "3f06647e-8a5b-4d7e-9c3e-530eb9f15261"

# Event Hubs spelling (camelCase), a streamed chat call.
LLM_CAMEL: dict[str, Any] = {
    "time": "2026-11-20T10:00:01.2345678Z",
    "resourceId": RESOURCE,
    "category": "GatewayLlmLogs",
    "operationName": "Microsoft.ApiManagement/GatewayLlmLogs",
    "properties": {
        "correlationId": CALL,
        "requestId": "chatcmpl-AXc3",
        "apiVersion": "2024-10-21",
        "deploymentName": "gpt-4o",
        "modelName": "gpt-4o-2024-08-06",
        "promptTokens": 1523,
        "completionTokens": 211,
        "totalTokens": 1734,
        "promptCachedTokens": 1280,
        "isStreamCompletion": True,
        "sequenceNumber": 0,
        "region": "East US",
    },
}

# Workspace-table spelling (PascalCase), another call.
LLM_PASCAL: dict[str, Any] = {
    "time": "2026-11-20T10:00:02.0000000Z",
    "resourceId": RESOURCE,
    "category": "GatewayLlmLogs",
    "operationName": "Microsoft.ApiManagement/GatewayLlmLogs",
    "properties": {
        "CorrelationId": "9d1c0b2a-0000-4000-8000-000000000002",
        "ApiVersion": "2024-06-01",
        "DeploymentName": "gpt-4o-mini",
        "ModelName": "gpt-4o-mini-2024-07-18",
        "PromptTokens": 40,
        "CompletionTokens": 9,
        "TotalTokens": 49,
        "IsStreamCompletion": False,
        "SequenceNumber": 0,
    },
}

# The tutorial's sample GatewayLogs entry, with the identity fields its schema lists.
GATEWAY: dict[str, Any] = {
    "Level": 4,
    "isRequestSuccess": True,
    "time": "2026-11-20T10:00:00.9876543Z",
    "operationName": "Microsoft.ApiManagement/GatewayLogs",
    "category": "GatewayLogs",
    "durationMs": 152,
    "callerIpAddress": "10.1.2.3",
    "correlationId": CALL,
    "location": "East US",
    "properties": {
        "method": "POST",
        "url": "https://apim-contoso.azure-api.net/openai/deployments/gpt-4o/chat/completions"
        "?api-version=2024-10-21",
        "backendResponseCode": 200,
        "responseCode": 200,
        "responseSize": 41583,
        "cache": "none",
        "backendTime": 87,
        "requestSize": 526,
        "apiId": "azure-openai",
        "operationId": "ChatCompletions_Create",
        "productId": "finance",
        "userId": "1",
        "apimSubscriptionId": "finance-chatbot",
        "backendId": "aoai-eastus",
        "clientProtocol": "HTTP/1.1",
        "backendProtocol": "HTTP/1.1",
        "apiRevision": "1",
        "clientTlsVersion": "1.2",
        "backendMethod": "POST",
        "backendUrl": "https://aoai-eastus.openai.azure.com/openai/deployments/gpt-4o/chat/completions",
    },
    "resourceId": RESOURCE,
}


def message(*records: object) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def renamed(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of the record with properties changed (``None`` removes one)."""
    result = copy.deepcopy(record)
    for name, value in changes.items():
        if value is None:
            result["properties"].pop(name, None)
        else:
            result["properties"][name] = value
    return result
