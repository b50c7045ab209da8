"""Stage 2: the gateway message, in any of the three shapes of CONTRACTS §1, as one `GatewayCall`.

The shapes are told apart by their fields:

- ``v1`` (ours) has ``version``;
- ``usage-only`` (the chargeback article's policy) has ``AppKey`` and ``PromptTokens``;
- ``bodies`` (the Azure-Samples policy) has ``request`` and ``response``.

Raw subscription keys are masked here, on arrival, so no later stage ever holds one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chargeback import jsontext
from chargeback.errors import MalformedMessage, MessageTooLarge, UnidentifiableMessage
from chargeback.receive import RawMessage

__all__ = ["GatewayCall", "mask_key", "parse_gateway_message"]

Shape = Literal["v1", "usage-only", "bodies"]


def mask_key(value: str | None) -> str | None:
    """First 8 characters, then ``XXXX`` (CONTRACTS §2): enough to tell callers apart."""
    if not value:
        return None
    return value[:8] + "XXXX"


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One call through the gateway, whatever shape it arrived in. Holds no raw key."""

    shape: Shape
    request_id: str
    timestamp: datetime
    url: str | None = None
    method: str | None = None
    status_code: int | None = None
    operation_id: str | None = None
    api_id: str | None = None
    product_id: str | None = None
    subscription_id: str | None = None
    subscription_name: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    business_unit: str | None = None
    end_user: str | None = None
    client_ip: str | None = None
    backend_id: str | None = None
    region: str | None = None
    response_content_type: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    request_body: str | None = None
    response_body: str | None = None
    app_key: str | None = None
    #: Token counts the message itself carried (the usage-only shape).
    event_tokens: tuple[int, int, int] | None = None
    #: The message was cut short (APIM's 200 KB limit) and only its prefix was read.
    truncated: bool = False


# --- The three input shapes -----------------------------------------------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class _V1(_Shape):
    version: int
    request_id: str = Field(alias="requestId", min_length=1, max_length=256)
    timestamp: datetime
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
    timestamp: datetime = Field(alias="Timestamp")
    api_operation: str | None = Field(default=None, alias="ApiOperation")
    app_key: str | None = Field(default=None, alias="AppKey")
    prompt_tokens: int = Field(alias="PromptTokens", ge=0, lt=2**53)
    completion_tokens: int = Field(default=0, alias="CompletionTokens", ge=0, lt=2**53)
    total_tokens: int | None = Field(default=None, alias="TotalTokens", ge=0, lt=2**53)


class _Bodies(_Shape):
    timestamp: datetime = Field(alias="eventTime")
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
            call = _v1_fast(fields, truncated)
            if call is not None:
                return call
            return _from_v1(_V1.model_validate(fields), truncated)
        if shape == "usage-only":
            return _from_usage_only(_UsageOnly.model_validate(fields), raw, truncated)
        return _from_bodies(_Bodies.model_validate(fields), raw, truncated)
    except ValidationError as exc:
        problem = _first_problem(exc)
        if truncated:
            raise UnidentifiableMessage(
                f"{shape} message cut short before its identity was complete ({problem})"
            ) from None
        raise MalformedMessage(f"{shape} message: {problem}") from None


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


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_v1(msg: _V1, truncated: bool) -> GatewayCall:
    return GatewayCall(
        shape="v1",
        request_id=msg.request_id,
        timestamp=_utc(msg.timestamp),
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
    values += [text[15], text[16], mask_key(text[4]), None, truncated]
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
#: pydantic does; any other form goes through pydantic.
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
    total = msg.total_tokens
    if total is None:
        total = msg.prompt_tokens + msg.completion_tokens
    return GatewayCall(
        shape="usage-only",
        request_id=_derived_id(raw),
        timestamp=_utc(msg.timestamp),
        operation_id=msg.api_operation,
        app_key=mask_key(msg.app_key),
        event_tokens=(msg.prompt_tokens, msg.completion_tokens, total),
        truncated=truncated,
    )


def _from_bodies(msg: _Bodies, raw: RawMessage, truncated: bool) -> GatewayCall:
    return GatewayCall(
        shape="bodies",
        request_id=_derived_id(raw),
        timestamp=_utc(msg.timestamp),
        operation_id=msg.api_operation,
        app_key=mask_key(msg.app_key),
        request_body=msg.request,
        response_body=msg.response,
        truncated=truncated,
    )
