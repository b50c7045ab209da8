"""Stage 6: the custom event of CONTRACTS §2, built from a call's stages, holding no key and no
content. The sinks that deliver it are beside this module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargeback.bodies import Exchange
    from chargeback.gateway import GatewayCall
    from chargeback.tokens import TokenCounts

__all__ = ["EVENT_NAME", "ChargebackEvent", "build_event", "iso_utc"]

#: Existing KQL in the field filters on this name.
EVENT_NAME = "Azure OpenAI Tokens"


@dataclass(frozen=True, slots=True)
class ChargebackEvent:
    """One custom event: string dimensions and numeric measurements, nothing else."""

    timestamp: datetime
    dimensions: Mapping[str, str]
    measurements: Mapping[str, float]
    name: str = EVENT_NAME

    def to_json(self) -> dict[str, Any]:
        """The JSON line of ``replay --sink jsonl`` (CONTRACTS §3)."""
        return {
            "name": self.name,
            "timestamp": iso_utc(self.timestamp),
            "customDimensions": dict(self.dimensions),
            "customMeasurements": dict(self.measurements),
        }


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond, always with a four-digit year (``0001-01-01T...``):
    ``datetime.isoformat`` pads the year to four digits on every platform, where ``%Y`` of
    glibc's strftime writes year 1 as ``1``. ``moment`` is in UTC (the gateway stage sees to
    it)."""
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def build_event(
    call: GatewayCall,
    exchange: Exchange,
    counts: TokenCounts,
    model: str | None,
    *,
    extra: Mapping[str, str] | None = None,
    measurements: Mapping[str, float] | None = None,
) -> ChargebackEvent:
    """The event of CONTRACTS §2 for one billable call. Holds no key and no content.

    Only dimensions with a value are written; ``extra`` (who pays, the price) then sets or, with
    an empty value, removes keys.

    Long on purpose: it runs once per event, so each key is written directly rather than built
    in a loop and filtered (measured in ``python -m chargeback bench``).
    """
    # Runs once per event: each key is written directly rather than built and then filtered.
    dimensions: dict[str, str] = {"RequestId": call.request_id} if call.request_id else {}
    dimensions["Timestamp"] = iso_utc(call.timestamp)
    if exchange.operation:
        dimensions["ApiOperation"] = exchange.operation
    dimensions["Stream"] = _flag(exchange.stream)
    for key, value in (
        ("AppKey", call.app_key),
        ("SubscriptionId", call.subscription_id),
        ("SubscriptionName", call.subscription_name),
        ("ProductId", call.product_id),
        ("AppId", call.app_id),
        ("BusinessUnit", call.business_unit),
        ("UserId", call.user_id),
        ("EndUser", call.end_user),
        ("Deployment", exchange.deployment),
        ("Model", model),
        ("ApiVersion", exchange.api_version),
        ("Backend", call.backend_id),
        ("Region", call.region),
        ("StatusCode", None if call.status_code is None else str(call.status_code)),
        ("TokenSource", counts.source),
        ("MessageShape", call.shape),
        ("Estimate", ",".join(counts.notes)),
    ):
        if value:
            dimensions[key] = value
    if counts.adjusted:  # what the usage rules changed (tokens/plausible.py)
        dimensions["UsageAdjusted"] = ",".join(counts.adjusted)
    if call.timestamp_adjusted:  # billed at the enqueued time (gateway/timestamps.py)
        dimensions["TimestampAdjusted"] = call.timestamp_adjusted
        if call.reported_timestamp is not None:
            dimensions["ReportedTimestamp"] = iso_utc(call.reported_timestamp)
    truncated = call.truncated or exchange.request_truncated or exchange.response_truncated
    dimensions["Truncated"] = _flag(truncated)
    dimensions["PromptTokens"] = str(counts.prompt)
    dimensions["CompletionTokens"] = str(counts.completion)
    dimensions["TotalTokens"] = str(counts.total)
    for key, extra_value in (extra or {}).items():
        if extra_value:
            dimensions[key] = extra_value
        else:
            dimensions.pop(key, None)
    values: dict[str, float] = {
        "PromptTokens": float(counts.prompt),
        "CompletionTokens": float(counts.completion),
        "TotalTokens": float(counts.total),
        "CachedTokens": float(counts.cached),
        "ReasoningTokens": float(counts.reasoning),
    }
    if measurements:
        values.update(measurements)
    return ChargebackEvent(call.timestamp, dimensions, values)


def _flag(value: bool) -> str:
    return "true" if value else "false"
