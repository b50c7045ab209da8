"""CONTRACTS §1d: one Event Hub message from an API Management diagnostic setting, record by record.

A diagnostic setting that streams to Event Hubs writes Azure Monitor's resource-log envelope,
``{"records": [...]}``, several records per message ("Send Azure resource log data ... Event
Hubs", learn.microsoft.com/azure/azure-monitor/essentials/resource-logs#send-to-azure-event-hubs).
Every record has the common top-level fields ``time``, ``resourceId``, ``category``,
``operationName`` and ``properties`` (learn.microsoft.com/azure/azure-monitor/essentials/
resource-logs-schema#top-level-common-schema). Two categories matter here:

- ``GatewayLlmLogs`` (table ApiManagementGatewayLlmLog, learn.microsoft.com/azure/azure-monitor/
  reference/tables/apimanagementgatewayllmlog): the tokens of one call, streamed calls included.
- ``GatewayLogs`` (table ApiManagementGatewayLogs, same reference): the call and who made it.

Property names arrive in camelCase on Event Hubs and in PascalCase in the workspace tables (and
both have been seen on Event Hubs), so every name is looked up case-insensitively. A record's
``correlationId`` may sit at the top level (the common schema has it there, and GatewayLogs
records put it there) or inside ``properties``; both are read, ``properties`` first.

Split records: API Management logs a prompt or completion over 32 KB in 32 KB chunks, each its
own record with a sequence number, and the request and the response of one call in separate
records, all with the same CorrelationId ("Log token usage, prompts, and completions for LLM
APIs", learn.microsoft.com/azure/api-management/api-management-howto-llm-logs). The chunks exist
to rebuild message text, which chargeback never reads; the token counts are per call. So the
GatewayLlmLogs records of one correlation id in one message are merged into one `LlmUsage`, each
count taken once (from the lowest sequence number that carries it, never summed), and a record
group that carries no count at all (a content-only continuation) is skipped with a reason. A
continuation that arrives in a later message and repeats the counts yields a second `LlmUsage`
with the same correlation id: downstream de-duplication by request id already covers that, as it
covers Event Hubs redelivery.

As for every shape, on arrival: ``time`` is read by `parse_timestamp` (a record whose time is
not readable is a `RecordError`), and every text value shaped like a credential is masked
(`chargeback.gateway.masking`; a correlation id as a request id is, so that it still joins the
``requestId`` of the v1 message of the same call). The counts are whole numbers >= 0; the usage
rules (`chargeback.tokens.plausible_counts`) are the pipeline's to apply, as for every source.

Nothing here depends on the rest of the pipeline except `chargeback.errors` and the gateway's own
masking and time reading: the pipeline turns `LlmUsage` and `GatewayIdentity` into events,
`Skipped` into a stated skip and `RecordError` into a dead letter of that record alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from chargeback.errors import BadMessage, MalformedMessage, UnidentifiableMessage
from chargeback.gateway import jsontext
from chargeback.gateway.masking import mask_credentials_in, mask_identity, mask_request_id
from chargeback.gateway.timestamps import parse_timestamp

__all__ = [
    "CATEGORY_GATEWAY",
    "CATEGORY_LLM",
    "GatewayIdentity",
    "LlmUsage",
    "RecordError",
    "RecordResult",
    "Skipped",
    "is_resource_log_envelope",
    "parse_resource_log_message",
    "parse_resource_log_records",
]

CATEGORY_LLM: Final = "GatewayLlmLogs"
CATEGORY_GATEWAY: Final = "GatewayLogs"


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """The tokens API Management recorded for one call (GatewayLlmLogs). Counts are ``None``
    when the record did not carry them; ``cached_tokens`` exists only in the Event Hubs payload
    (the workspace table has no such column)."""

    correlation_id: str
    time: datetime
    resource_id: str | None
    model: str | None
    deployment: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cached_tokens: int | None
    stream: bool | None
    #: The lowest sequence number among the merged records (``None`` when none had one).
    sequence_number: int | None
    api_version: str | None
    #: The language model's own request id (column RequestId), not the gateway's.
    llm_request_id: str | None
    region: str | None
    #: How many records of this call the message held (more than 1 for a split record).
    records: int


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """The call and who made it (GatewayLogs). ``subscription_id`` is API Management's
    subscription entity id (ApimSubscriptionId), never a key."""

    correlation_id: str
    time: datetime
    resource_id: str | None
    subscription_id: str | None
    product_id: str | None
    user_id: str | None
    api_id: str | None
    operation_id: str | None
    caller_ip: str | None
    backend_id: str | None
    url: str | None
    status_code: int | None
    method: str | None
    region: str | None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record chargeback does not use, and why."""

    index: int
    category: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RecordError:
    """One record that can never be processed; the rest of the message goes on. ``record`` is
    the record as it arrived, for the dead letter."""

    index: int
    category: str | None
    error: BadMessage
    record: object


type RecordResult = LlmUsage | GatewayIdentity | Skipped | RecordError


def is_resource_log_envelope(value: object) -> bool:
    """True for Azure Monitor's envelope: an object whose ``records`` is a list."""
    return isinstance(value, Mapping) and isinstance(value.get("records"), list)


def parse_resource_log_message(body: bytes | str) -> list[RecordResult]:
    """One Event Hub message body. A body that is not the envelope raises `MalformedMessage`
    (the whole message is bad); a bad record only yields a `RecordError` in its place."""
    try:
        # orjson: a nesting too deep is a decode error, never a RecursionError.
        value = jsontext.loads(body)
    except ValueError as exc:
        raise MalformedMessage(f"resource-log message is not JSON: {exc}") from None
    if not is_resource_log_envelope(value):
        raise MalformedMessage('resource-log message has no "records" list')
    records: list[object] = value["records"]
    return parse_resource_log_records(records)


def parse_resource_log_records(records: Sequence[object]) -> list[RecordResult]:
    """The results in record order; the GatewayLlmLogs records of one call become one
    `LlmUsage` at the place of the first of them."""
    results: list[RecordResult | _LlmPart] = []
    for index, record in enumerate(records):
        results.append(_parse_record(index, record))
    return _merge_llm_parts(results)


# --- One record -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LlmPart:
    """One GatewayLlmLogs record before the records of the same call are merged."""

    index: int
    correlation_id: str
    time: datetime
    resource_id: str | None
    fields: dict[str, object]
    sequence_number: int | None


def _parse_record(index: int, record: object) -> RecordResult | _LlmPart:
    if not isinstance(record, Mapping):
        error = MalformedMessage(f"record {index} is {_kind(record)}, not an object")
        return RecordError(index, None, error, record)
    view = _Fields(index, record)
    category = view.top("category")
    if not isinstance(category, str) or not category:
        error = MalformedMessage(f"record {index} has no category")
        return RecordError(index, None, error, record)
    try:
        if category.casefold() == CATEGORY_LLM.casefold():
            return _llm_part(view)
        if category.casefold() == CATEGORY_GATEWAY.casefold():
            return _identity(view)
    except BadMessage as exc:
        return RecordError(index, category, exc, record)
    return Skipped(index, category, f"category {category} is not used for chargeback")


def _llm_part(view: _Fields) -> _LlmPart:
    fields: dict[str, object] = {
        "model": view.text("modelName"),
        "deployment": view.text("deploymentName"),
        "prompt_tokens": view.count("promptTokens"),
        "completion_tokens": view.count("completionTokens"),
        "total_tokens": view.count("totalTokens"),
        "cached_tokens": view.count("promptCachedTokens"),
        "stream": view.flag("isStreamCompletion"),
        "api_version": view.text("apiVersion"),
        "llm_request_id": view.text("requestId"),
        "region": view.text("region") or view.text("location"),
    }
    return _LlmPart(
        index=view.index,
        correlation_id=view.correlation_id(),
        time=view.time(),
        resource_id=view.text("resourceId"),
        fields=fields,
        sequence_number=view.count("sequenceNumber"),
    )


def _identity(view: _Fields) -> GatewayIdentity:
    return GatewayIdentity(
        correlation_id=view.correlation_id(),
        time=view.time(),
        resource_id=view.text("resourceId"),
        subscription_id=view.text("apimSubscriptionId"),
        product_id=view.text("productId"),
        user_id=view.text("userId"),
        api_id=view.text("apiId"),
        operation_id=view.text("operationId"),
        caller_ip=view.text("callerIpAddress"),
        backend_id=view.text("backendId"),
        url=view.url(),
        status_code=view.count("responseCode"),
        method=view.text("method"),
        region=view.text("region") or view.text("location"),
    )


class _Fields:
    """Case-insensitive reads of one record: ``properties`` first, then the top level."""

    def __init__(self, index: int, record: Mapping[object, object]) -> None:
        self.index = index
        self._top = _folded(record)
        properties = self._top.get("properties")
        self._properties = _folded(properties) if isinstance(properties, Mapping) else {}

    def top(self, name: str) -> object:
        return self._top.get(name.casefold())

    def get(self, name: str) -> object:
        key = name.casefold()
        value = self._properties.get(key)
        return self._top.get(key) if value is None else value

    def text(self, name: str) -> str | None:
        """A string, masked when it is shaped like a credential."""
        value = self.raw_text(name)
        return mask_identity(value)

    def raw_text(self, name: str) -> str | None:
        value = self.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        raise self._wrong(name, value, "a string")

    def url(self) -> str | None:
        return mask_credentials_in(self.raw_text("url"))

    def count(self, name: str) -> int | None:
        """A whole number >= 0: a JSON integer, or a string of at most 30 ASCII digits (more
        is above any ceiling, and Python refuses to convert over 4,300)."""
        value = self.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            digits = value.strip()
            if digits.isascii() and digits.isdigit() and len(digits) <= 30:
                return int(digits)
        raise self._wrong(name, value, "a whole number")

    def flag(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().casefold() in {"true", "false"}:
            return value.strip().casefold() == "true"
        raise self._wrong(name, value, "true or false")

    def correlation_id(self) -> str:
        value = self.raw_text("correlationId")
        if value is None:
            raise UnidentifiableMessage(f"record {self.index} has no correlationId")
        return mask_request_id(value)

    def time(self) -> datetime:
        value = self.get("time")
        if value is None or value == "":
            raise UnidentifiableMessage(f"record {self.index} has no time")
        try:
            return parse_timestamp(value, "time")
        except MalformedMessage as exc:
            raise MalformedMessage(f"record {self.index}: {exc}") from None

    def _wrong(self, name: str, value: object, expected: str) -> MalformedMessage:
        # The value's kind, never the value: a dead letter's detail holds no message content.
        return MalformedMessage(f"record {self.index}: {name} is {_kind(value)}, not {expected}")


def _folded(mapping: Mapping[object, object]) -> dict[str, object]:
    # Both spellings in one record: the first one seen wins, as it would in a JSON reader.
    folded: dict[str, object] = {}
    for key, value in mapping.items():
        if isinstance(key, str):
            folded.setdefault(key.casefold(), value)
    return folded


def _kind(value: object) -> str:
    """What a wrong value is, without its content: numbers and booleans are shown (they are no
    one's text), a string only by its length."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return {list: "a list", dict: "an object", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# --- Merging the records of one call ---------------------------------------------------------

_COUNTS: Final = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens")


def _merge_llm_parts(results: list[RecordResult | _LlmPart]) -> list[RecordResult]:
    groups: dict[str, list[_LlmPart]] = {}
    for item in results:
        if isinstance(item, _LlmPart):
            groups.setdefault(item.correlation_id, []).append(item)
    merged: list[RecordResult] = []
    for item in results:
        if not isinstance(item, _LlmPart):
            merged.append(item)
        elif groups[item.correlation_id][0] is item:
            merged.append(_merge(groups[item.correlation_id]))
    return merged


def _merge(parts: list[_LlmPart]) -> LlmUsage | Skipped:
    # Lowest sequence number first; records without one keep their order, after the numbered.
    ordered = sorted(parts, key=lambda p: (p.sequence_number is None, p.sequence_number or 0))
    fields: dict[str, object] = {}
    for part in ordered:
        for name, value in part.fields.items():
            if value is not None:
                fields.setdefault(name, value)
    first = ordered[0]
    if not any(name in fields for name in _COUNTS):
        reason = (
            f"GatewayLlmLogs record of {first.correlation_id} carries no token counts "
            "(message content only: the continuation of a split record)"
        )
        return Skipped(min(p.index for p in parts), CATEGORY_LLM, reason)
    return LlmUsage(
        correlation_id=first.correlation_id,
        time=first.time,
        resource_id=first.resource_id,
        sequence_number=first.sequence_number,
        records=len(parts),
        model=_opt_str(fields.get("model")),
        deployment=_opt_str(fields.get("deployment")),
        prompt_tokens=_opt_int(fields.get("prompt_tokens")),
        completion_tokens=_opt_int(fields.get("completion_tokens")),
        total_tokens=_opt_int(fields.get("total_tokens")),
        cached_tokens=_opt_int(fields.get("cached_tokens")),
        stream=_opt_bool(fields.get("stream")),
        api_version=_opt_str(fields.get("api_version")),
        llm_request_id=_opt_str(fields.get("llm_request_id")),
        region=_opt_str(fields.get("region")),
    )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None
