"""Stage 2: the gateway message, in any of the three shapes of CONTRACTS §1, as one `GatewayCall`.

The shapes are told apart by their fields:

- ``v1`` (ours) has ``version``;
- ``usage-only`` (the chargeback article's policy) has ``AppKey`` and ``PromptTokens``;
- ``bodies`` (the Azure-Samples policy) has ``request`` and ``response``.

Raw subscription keys, and any value shaped like a credential, are masked here, on arrival, so
no later stage ever holds one (`chargeback.gateway.masking`). The call's time is read from the
forms each policy writes, and settled against the time Event Hubs enqueued the message
(`chargeback.gateway.timestamps`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chargeback.errors import MalformedMessage, MessageTooLarge, UnidentifiableMessage
from chargeback.gateway import jsontext
from chargeback.gateway.arrival import on_arrival
from chargeback.gateway.call import GatewayCall, Shape
from chargeback.gateway.masking import (
    mask_key,
)
from chargeback.gateway.timestamps import parse_timestamp
from chargeback.receive import RawMessage

__all__ = ["parse_gateway_message"]


# --- The three input shapes -----------------------------------------------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class _V1(_Shape):
    version: int
    request_id: str = Field(alias="requestId", min_length=1, max_length=256)
    #: Read by `parse_timestamp`, which words its own errors.
    timestamp: Any
    url: str = Field(max_length=8192)
    status_code: int = Field(alias="statusCode", ge=0, le=999)
    method: str | None = None
    operation_id: str | None = Field(default=None, alias="operationId")
    api_id: str | None = Field(default=None, alias="apiId")
    product_id: str | None = Field(default=None, alias="productId")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    subscription_name: str | None = Field(default=None, alias="subscriptionName")
    user_id: str | None = Field(default=None, alias="userId")
    app_id: str | None = Field(default=None, alias="appId")
    business_unit: str | None = Field(default=None, alias="businessUnit")
    end_user: str | None = Field(default=None, alias="endUser")
    client_ip: str | None = Field(default=None, alias="clientIp")
    backend_id: str | None = Field(default=None, alias="backendId")
    region: str | None = None
    response_content_type: str | None = Field(default=None, alias="responseContentType")
    model: str | None = None
    usage: dict[str, Any] | None = None
    request_body: str | None = Field(default=None, alias="requestBody")
    response_body: str | None = Field(default=None, alias="responseBody")


class _UsageOnly(_Shape):
    timestamp: Any = Field(alias="Timestamp")
    api_operation: str | None = Field(default=None, alias="ApiOperation")
    app_key: str | None = Field(default=None, alias="AppKey")
    #: Read by `_count`: a count is a whole number, never a bool or 12.5 (pydantic's lax int
    #: takes ``true`` as 1); how large is the usage rules' question, not the shape's.
    prompt_tokens: Any = Field(alias="PromptTokens")
    completion_tokens: Any = Field(default=0, alias="CompletionTokens")
    total_tokens: Any = Field(default=None, alias="TotalTokens")


class _Bodies(_Shape):
    timestamp: Any = Field(alias="eventTime")
    api_operation: str | None = Field(default=None, alias="apiOperation")
    app_key: str | None = Field(default=None, alias="appSubscriptionKey")
    request: str | None = None
    response: str | None = None


# --- Parsing --------------------------------------------------------------------------------


def parse_gateway_message(raw: RawMessage, *, max_bytes: int) -> GatewayCall:
    """Read one Event Hub message. Raises a `BadMessage` subclass when it cannot be used."""
    if len(raw.body) > max_bytes:
        raise MessageTooLarge(
            f"message is {len(raw.body)} bytes, over CHARGEBACK_MAX_MESSAGE_BYTES={max_bytes}"
        )
    fields, truncated = _decode(raw.body)
    try:
        shape = _shape_of(fields)
    except MalformedMessage as exc:
        if truncated:
            raise UnidentifiableMessage(
                f"message cut short before its shape was known: {exc}"
            ) from None
        raise
    try:
        if shape == "v1":
            call = _v1_fast(fields, truncated) or _from_v1(_V1.model_validate(fields), truncated)
        elif shape == "usage-only":
            call = _from_usage_only(_UsageOnly.model_validate(fields), raw, truncated)
        else:
            call = _from_bodies(_Bodies.model_validate(fields), raw, truncated)
        return on_arrival(call, raw)
    except ValidationError as exc:
        problem = _first_problem(exc)
        if truncated:
            raise UnidentifiableMessage(
                f"{shape} message cut short before its identity was complete ({problem})"
            ) from None
        raise MalformedMessage(f"{shape} message: {problem}") from None
    except MalformedMessage as exc:  # a field read after validation: the time, a count
        raise MalformedMessage(f"{shape} message: {exc}") from None


def _decode(body: bytes) -> tuple[dict[str, Any], bool]:
    if body.endswith(b"}"):
        # The usual case, a whole message: decoded once, straight from the bytes.
        try:
            value = jsontext.loads(body)
        except ValueError:
            pass
        else:
            if isinstance(value, dict):
                return value, False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut can fall inside a multi-byte character; anything else is not our message.
        if exc.start < len(body) - 3:
            raise MalformedMessage(f"message is not UTF-8 (byte {exc.start})") from None
        text = body[: exc.start].decode("utf-8")
    try:
        value, truncated, last_cut = jsontext.loads_prefix(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"message is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"message is JSON {type(value).__name__}, not an object")
    if last_cut and value and next(reversed(value)) not in _MAY_BE_CUT:
        # A cut url or usage object is not what was sent: drop it rather than bill from it.
        value.popitem()
    return value, truncated


#: The fields that may arrive cut short and still be used (marked Truncated): the bodies, which
#: the policies put last.
_MAY_BE_CUT = frozenset({"requestBody", "responseBody", "request", "response"})


def _shape_of(fields: dict[str, Any]) -> Shape:
    if "version" in fields:
        if fields["version"] != 1:
            # The value itself is not echoed: dead-letter details never hold message content.
            raise MalformedMessage(f"unsupported message version (a {_kind(fields['version'])})")
        return "v1"
    if "AppKey" in fields or "PromptTokens" in fields:
        return "usage-only"
    if "request" in fields or "response" in fields or "appSubscriptionKey" in fields:
        return "bodies"
    raise MalformedMessage(
        f"message matches none of the input shapes ({len(fields)} fields, none of them"
        " version, AppKey, PromptTokens, request, response or appSubscriptionKey)"
    )


def _kind(value: Any) -> str:
    """A value's JSON type and size, never the value: what a dead-letter detail may say."""
    if isinstance(value, str):
        return f"string of {len(value)} characters"
    return type(value).__name__


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "message"
    return f"field {where}: {err['msg']}"


def _from_v1(msg: _V1, truncated: bool) -> GatewayCall:
    return GatewayCall(
        shape="v1",
        request_id=msg.request_id,
        timestamp=parse_timestamp(msg.timestamp, "timestamp"),
        url=msg.url,
        method=msg.method,
        status_code=msg.status_code,
        operation_id=msg.operation_id,
        api_id=msg.api_id,
        product_id=msg.product_id,
        subscription_id=msg.subscription_id,
        subscription_name=msg.subscription_name,
        user_id=msg.user_id,
        app_id=msg.app_id,
        business_unit=msg.business_unit,
        end_user=msg.end_user,
        client_ip=msg.client_ip,
        backend_id=msg.backend_id,
        region=msg.region,
        response_content_type=msg.response_content_type,
        model=msg.model,
        usage=msg.usage,
        request_body=msg.request_body,
        response_body=msg.response_body,
        app_key=mask_key(msg.subscription_id),
        truncated=truncated,
    )


def _v1_fast(fields: dict[str, Any], truncated: bool) -> GatewayCall | None:
    """The usual v1 message, whose fields already have the types `_V1` wants, without pydantic:
    the same `GatewayCall` `_from_v1` builds. None for anything else (a missing field, another
    type, a value out of range, another timestamp form), which `_V1` then validates or words the
    error for."""
    get = fields.get
    request_id, url, status = get("requestId"), get("url"), get("statusCode")
    timestamp, usage = get("timestamp"), get("usage")
    if (
        type(get("version")) is not int
        or type(request_id) is not str
        or not 0 < len(request_id) <= 256
        or type(url) is not str
        or len(url) > 8192
        or type(status) is not int
        or not 0 <= status <= 999
        or type(timestamp) is not str
        or _POLICY_TIME.fullmatch(timestamp) is None
        or (usage is not None and type(usage) is not dict)
    ):
        return None
    text = list(map(get, _V1_TEXT))
    if not _TEXT_TYPES.issuperset(map(type, text)):
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:  # a date or time out of range: pydantic words the error
        return None
    # In `GatewayCall`'s field order (checked at import).
    values = ["v1", request_id, moment.astimezone(UTC), url, text[0], status, *text[1:15], usage]
    values += [text[15], text[16], mask_key(text[4]), None, truncated, None, None]
    call = _new_call(GatewayCall)
    for set_slot, value in zip(_CALL_SLOTS, values, strict=True):
        set_slot(call, value)
    return call


#: The v1 fields of `GatewayCall`, in its field order from ``method`` to ``model`` less
#: ``status_code``: optional strings (``method``, ``region`` and ``model`` have no alias).
_V1_TEXT = (
    "method",
    "operationId",
    "apiId",
    "productId",
    "subscriptionId",
    "subscriptionName",
    "userId",
    "appId",
    "businessUnit",
    "endUser",
    "clientIp",
    "backendId",
    "region",
    "responseContentType",
    "model",
    "requestBody",
    "responseBody",
)
_TEXT_TYPES = frozenset({str, type(None)})
#: The timestamp the policy writes (UTC, ``Z``), which `datetime.fromisoformat` reads exactly as
#: `parse_timestamp` does; any other form goes through it.
_POLICY_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
)
#: A `GatewayCall` filled slot by slot: a frozen dataclass's ``__init__`` sets each field
#: through ``object.__setattr__``, which costs twice as much on the path every message takes.
_new_call = object.__new__
_CALL_FIELDS = tuple(f.name for f in dataclasses.fields(GatewayCall))
_CALL_SLOTS = tuple(getattr(GatewayCall, name).__set__ for name in _CALL_FIELDS)


def _v1_order() -> tuple[str, ...]:
    """The field order `_v1_fast` fills in, by `_V1`'s own names."""
    names = {field.alias or name: name for name, field in _V1.model_fields.items()}
    text = [names[alias] for alias in _V1_TEXT]
    middle = (text[0], "status_code", *text[1:15], "usage", *text[15:])
    return (
        "shape",
        "request_id",
        "timestamp",
        "url",
        *middle,
        "app_key",
        "event_tokens",
        "truncated",
        "reported_timestamp",
        "timestamp_adjusted",
    )


if _v1_order() != _CALL_FIELDS:  # pragma: no cover - a change to GatewayCall or _V1
    raise AssertionError("GatewayCall's fields are not in the order _v1_fast fills them in")


def _derived_id(raw: RawMessage) -> str:
    # The same bytes always give the same id, whichever path (Function, replay of a file or of
    # a dead letter) reads them, so a redelivery is removed as a duplicate.
    return "sha256:" + hashlib.sha256(raw.body).hexdigest()[:32]


def _from_usage_only(msg: _UsageOnly, raw: RawMessage, truncated: bool) -> GatewayCall:
    if truncated and "completion_tokens" not in msg.model_fields_set:
        # Cut before CompletionTokens: its default of 0 would bill the call short, silently.
        raise UnidentifiableMessage("usage-only message cut short before CompletionTokens")
    prompt = _count(msg.prompt_tokens, "PromptTokens")
    completion = _count(msg.completion_tokens, "CompletionTokens")
    total = None if msg.total_tokens is None else _count(msg.total_tokens, "TotalTokens")
    return GatewayCall(
        shape="usage-only",
        request_id=_derived_id(raw),
        timestamp=parse_timestamp(msg.timestamp, "Timestamp"),
        operation_id=msg.api_operation,
        app_key=mask_key(msg.app_key),
        # A missing total is prompt + completion; a total that differs is the usage rules'
        # to correct and flag (`chargeback.tokens.plausible`).
        event_tokens=(prompt, completion, prompt + completion if total is None else total),
        truncated=truncated,
    )


#: A count as the article's policy writes it (``.ToString()`` of an int) or as JSON: up to 30
#: digits, far above any ceiling, so that a longer run is refused before Python converts it.
_DIGITS = re.compile(r"[0-9]{1,30}", re.ASCII)


def _count(value: Any, field: str) -> int:
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    raise MalformedMessage(f"field {field}: {_kind(value)}, not a count (a whole number >= 0)")


def _from_bodies(msg: _Bodies, raw: RawMessage, truncated: bool) -> GatewayCall:
    return GatewayCall(
        shape="bodies",
        request_id=_derived_id(raw),
        timestamp=parse_timestamp(msg.timestamp, "eventTime"),
        operation_id=msg.api_operation,
        app_key=mask_key(msg.app_key),
        request_body=msg.request,
        response_body=msg.response,
        truncated=truncated,
    )
