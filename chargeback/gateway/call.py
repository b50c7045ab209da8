"""`GatewayCall`: one call through the gateway, whatever shape its message arrived in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["GatewayCall", "Shape"]

Shape = Literal["v1", "usage-only", "bodies", "resource-logs"]


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One call through the gateway, whatever shape it arrived in. Holds no raw key, and no
    value shaped like a credential (`chargeback.gateway.masking`)."""

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
    #: The message's own time, when ``timestamp`` is not it (`chargeback.gateway.timestamps`).
    reported_timestamp: datetime | None = None
    #: Why ``timestamp`` is the enqueued time: ``ahead-of-enqueued`` or ``behind-enqueued``.
    timestamp_adjusted: str | None = None
