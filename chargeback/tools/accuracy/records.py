"""The recorded calls the accuracy command measures: their category, distinct calls, the usage
stripped, each sent through the production path (`Processor` into a `MemorySink`) and compared
with the usage the API reported."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings
from chargeback.tokens import usage_from_api
from chargeback.tools.accuracy.measurement import (
    APPROXIMATE,
    NOT_ESTIMABLE,
    OTHER_FAMILIES,
    RESPONSE_STATUSES,
    RESPONSES_SETTLED,
    Measurement,
)
from chargeback.tools.progress import Progress
from chargeback.tools.recordings import ENDPOINT_PATHS

__all__ = [
    "FILE_KEY",
    "category",
    "distinct",
    "gateway_message",
    "measurable",
    "measure",
    "strip_usage",
]

_PLACEHOLDER_IMAGES = {
    "openai+openai-dotnet": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVQYV2Ng"
    "AAIAAAUAAarVyFEAAAAASUVORK5CYII="
}

# --- Which category a record belongs to -----------------------------------------------------


_IMAGE_PARTS = frozenset({"image_url", "input_image"})
_FILE_PARTS = frozenset({"input_audio", "file", "input_file"})


def _has_part(value: Any, types: frozenset[str]) -> bool:
    """A content part of one of these types anywhere in a request's messages or input items."""
    if isinstance(value, dict):
        if value.get("type") in types:
            return True
        return any(_has_part(item, types) for item in value.values())
    if isinstance(value, list):
        return any(_has_part(item, types) for item in value)
    return False


def category(record: dict[str, Any]) -> str:
    """The table row of a record, from its request ("other families" is decided by the estimate:
    see `_measurement`)."""
    request = record.get("request") or {}
    endpoint = record.get("endpoint")
    if endpoint == "embeddings":
        return "embeddings"
    if endpoint == "completions":
        return "legacy completions"
    if endpoint == "responses":
        return "Responses API"
    if _has_part(request.get("messages"), _FILE_PARTS):
        return "files and audio"
    if _has_part(request.get("messages"), _IMAGE_PARTS):
        return "images"
    if request.get("tools") or request.get("functions") or _json_schema(request):
        return "chat with tools/schema"
    return "text chat"


def _json_schema(request: dict[str, Any]) -> bool:
    found = request.get("response_format")
    return isinstance(found, dict) and found.get("type") == "json_schema"


def distinct(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of distinct calls, first of each kept: one call is one endpoint, request body
    and reported usage (cassettes replay the same call many times)."""
    seen: set[tuple[Any, str, str]] = set()
    kept = []
    for record in records:
        key = (
            record.get("endpoint"),
            json.dumps(record.get("request"), sort_keys=True),
            json.dumps(record.get("usage"), sort_keys=True),
        )
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept


# --- Stripping the usage --------------------------------------------------------------------


def strip_usage(response_text: str, stream: bool) -> str:
    """The response body as if the API had reported no usage."""
    if not stream:
        body = json.loads(response_text)
        if isinstance(body, dict):
            body.pop("usage", None)
        return json.dumps(body)
    return "".join(_strip_line(line) for line in response_text.splitlines(keepends=True))


def _strip_line(line: str) -> str:
    if not line.startswith("data:"):
        return line
    payload = line[5:].strip()
    try:
        chunk = json.loads(payload)
    except ValueError:
        return line  # "[DONE]" and anything else not JSON stays as it was
    if not isinstance(chunk, dict):
        return line
    if isinstance(chunk.get("usage"), dict):
        if not chunk.get("choices"):
            return ""  # the usage chunk itself
        chunk["usage"] = None
    response = chunk.get("response")
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        response.pop("usage")
    ending = line[len(line.rstrip("\r\n")) :]
    return "data: " + json.dumps(chunk) + ending


def gateway_message(record: dict[str, Any], request_id: str) -> bytes:
    """A record as the APIM policy sends it (CONTRACTS §1a), usage stripped."""
    fields = {
        "version": 1,
        "requestId": request_id,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "method": "POST",
        "url": f"https://gw.example.com/openai/v1/{ENDPOINT_PATHS[record['endpoint']]}",
        "statusCode": record["status"],
        "responseContentType": "text/event-stream" if record["stream"] else "application/json",
        "requestBody": json.dumps(record["request"]),
        "responseBody": strip_usage(record["response_text"], record["stream"]),
    }
    return json.dumps(fields).encode()


# --- Measuring ------------------------------------------------------------------------------

#: The key under which `read_records` notes the file a record came from.
FILE_KEY = "_file"


def measurable(record: dict[str, Any]) -> bool:
    """Only answered calls with a reported usage have something to compare with."""
    return (
        record.get("status") == 200
        and bool(record.get("usage"))
        and record.get("endpoint") in ENDPOINT_PATHS
    )


def measure(
    records: Iterable[dict[str, Any]],
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> list[Measurement]:
    """Run every measurable record through the production path and compare; ``progress``
    advances a record at a time."""
    chosen = [record for record in records if measurable(record)]
    sink = MemorySink()
    processor = Processor(settings or load_settings(), sink, MemoryDeadLetters())
    numbered: Iterable[tuple[int, dict[str, Any]]] = enumerate(chosen)
    if progress is not None:
        progress.expect(len(chosen))
        numbered = progress.each(numbered)
    processor.process_batch(
        RawMessage(gateway_message(record, f"rec-{number}"), sequence_number=number)
        for number, record in numbered
    )
    events = {event.dimensions["RequestId"]: event for event in sink.events}
    return [
        _measurement(record, events.get(f"rec-{number}")) for number, record in enumerate(chosen)
    ]


def _measurement(record: dict[str, Any], event: ChargebackEvent | None) -> Measurement:
    reported = usage_from_api(record["usage"])
    assert reported is not None  # measurable() kept only records with a usage
    model = record.get("model") or str(record["request"].get("model"))
    source, file = str(record.get("src") or ""), str(record.get(FILE_KEY) or "")
    if event is None:
        return Measurement(
            NOT_ESTIMABLE,
            model,
            reported.prompt,
            reported.completion - reported.reasoning,
            source=source,
            file=file,
        )
    completion = int(event.measurements["CompletionTokens"])
    # Reasoning the body shows (gpt-oss) is estimated too: compare whole completions then.
    shown = int(event.measurements.get("ReasoningTokens", 0)) > 0
    notes = event.dimensions.get("Estimate") or ""
    return Measurement(
        OTHER_FAMILIES if APPROXIMATE in notes.split(",") else category(record),
        model,
        reported.prompt,
        reported.completion - (0 if shown else reported.reasoning),
        estimated_prompt=int(event.measurements["PromptTokens"]),
        estimated_completion=completion,
        notes=notes,
        implausible=reported.total == 0 and completion > 0,
        not_api=_status(record) not in RESPONSE_STATUSES | {None},
        edited=_edited(record),
        early=_early(record),
        source=source,
        file=file,
    )


def _edited(record: dict[str, Any]) -> bool:
    placeholder = _PLACEHOLDER_IMAGES.get(str(record.get("src")))
    return placeholder is not None and placeholder in json.dumps(record.get("request"))


def _early(record: dict[str, Any]) -> bool:
    created = _response_field(record, "created_at")
    return isinstance(created, (int, float)) and created < RESPONSES_SETTLED


def _status(record: dict[str, Any]) -> Any:
    """The ``status`` a Responses body gives (its last ``response`` object when streamed)."""
    return _response_field(record, "status")


def _response_field(record: dict[str, Any], name: str) -> Any:
    """A field of a Responses body (of its last ``response`` object when streamed)."""
    if record.get("endpoint") != "responses":
        return None
    if not record.get("stream"):
        try:
            body = json.loads(record["response_text"])
        except ValueError:
            return None
        return body.get(name) if isinstance(body, dict) else None
    found = None
    for line in record["response_text"].splitlines():
        if not line.startswith("data:"):
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        response = chunk.get("response") if isinstance(chunk, dict) else None
        if isinstance(response, dict) and name in response:
            found = response[name]
    return found
