"""What a call is, from its URL or the gateway's operation id: the operation, the deployment and
the api-version."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "RESPONSE_OBJECTS",
    "Operation",
    "Route",
    "operation_from_id",
    "operation_from_request",
    "route",
]

Operation = Literal["chat.completion", "text_completion", "embeddings", "responses"]

# Path ending -> operation, longest first, so "chat/completions" wins over "completions".
# Source: Azure OpenAI REST reference (classic /openai/deployments/{d}/... and the v1 API
# /openai/v1/...), and the OpenAI API reference for the same paths under /v1.
_OPERATIONS: tuple[tuple[str, Operation], ...] = (
    ("/chat/completions", "chat.completion"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
)

# APIM operation ids and names (the usage-only and bodies shapes carry no URL).
_OPERATION_IDS: dict[str, Operation] = {
    "chatcompletions_create": "chat.completion",
    "chat.completion": "chat.completion",
    "completions_create": "text_completion",
    "text_completion": "text_completion",
    "embeddings_create": "embeddings",
    "embeddings": "embeddings",
    "responses_create": "responses",
    "createresponse": "responses",
    "responses": "responses",
}

# The "object" field of a response body or its first stream chunk.
RESPONSE_OBJECTS: dict[str, Operation] = {
    "chat.completion": "chat.completion",
    "chat.completion.chunk": "chat.completion",
    "text_completion": "text_completion",
    "list": "embeddings",
    "response": "responses",
}

_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")


@dataclass(frozen=True, slots=True)
class Route:
    """What the URL says: the operation, the deployment (classic form) and the api-version."""

    operation: Operation | None
    deployment: str | None
    api_version: str | None


@functools.lru_cache(maxsize=1024)  # a gateway serves few distinct URLs
def route(url: str | None) -> Route:
    """Read operation, deployment and api-version from a gateway URL."""
    if not url:
        return Route(None, None, None)
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    operation = next((op for suffix, op in _OPERATIONS if path.endswith(suffix)), None)
    match = _DEPLOYMENT.search(path + "/")
    deployment = unquote(match.group(1)) if match else None
    versions = parse_qs(parts.query).get("api-version")
    return Route(operation, deployment, versions[0] if versions else None)


def operation_from_id(operation_id: str | None) -> Operation | None:
    if not operation_id:
        return None
    return _OPERATION_IDS.get(operation_id.strip().lower())


def operation_from_request(request: dict[str, Any] | None) -> Operation | None:
    if request is None:
        return None
    if "messages" in request:
        return "chat.completion"
    if "prompt" in request:
        return "text_completion"
    if "input" in request:
        # Embeddings and Responses both take "input"; only Responses has these.
        responses_only = ("instructions", "tools", "previous_response_id", "reasoning", "text")
        return "responses" if any(k in request for k in responses_only) else "embeddings"
    return None
