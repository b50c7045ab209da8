"""Stage 6: the custom event of CONTRACTS §2, and the sinks that deliver it.

Application Insights receives events through the real azure-monitor-opentelemetry exporter. We
log them on a dedicated Python logger, ``chargeback.emit.event``, that does not propagate: the root
logger, which the Functions host turns into traces, never sees them, so each call is exactly one
``customEvents`` row and no duplicate trace.

Delivery is checked. `AzureMonitorSink` exports the batch synchronously at `flush` with the
exporter's offline storage off, and raises `TelemetryNotAccepted` when the ingestion endpoint did
not accept it, so the Function fails and Event Hubs runs the batch again (README, "Reliability").
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

from chargeback.errors import TelemetryNotAccepted

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

    from chargeback.bodies import Exchange
    from chargeback.gateway import GatewayCall
    from chargeback.settings import Settings
    from chargeback.tokens import TokenCounts

__all__ = [
    "EVENT_NAME",
    "AzureMonitorSink",
    "ChargebackEvent",
    "EventSink",
    "JsonlSink",
    "MemorySink",
    "build_event",
]

#: Existing KQL in the field filters on this name.
EVENT_NAME = "Azure OpenAI Tokens"
LOGGER_NAME = "chargeback.emit.event"


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
    if moment.year >= 1000:  # isoformat pads a year to 4 digits, strftime does not
        # The same text as below, in half the time: it runs once per event.
        return moment.isoformat(timespec="milliseconds")[:23] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class EventSink(Protocol):
    """Where events go. `flush` raises a `TransientError` when they were not delivered."""

    def emit(self, event: ChargebackEvent) -> None: ...

    def flush(self) -> None: ...


@dataclass
class MemorySink:
    """Keeps events in a list: for tests and the benchmark."""

    events: list[ChargebackEvent] = field(default_factory=list)
    flushes: int = 0

    def emit(self, event: ChargebackEvent) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1


class JsonlSink:
    """One JSON line per event on a text stream (standard output by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout

    def emit(self, event: ChargebackEvent) -> None:
        self._stream.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self._stream.flush()


# --- Application Insights -------------------------------------------------------------------


class _OpenTelemetryHandler(logging.Handler):
    """Turns a record of the events logger into one OpenTelemetry log record carrying exactly
    the event's attributes (the SDK's own handler would add code.* attributes)."""

    def __init__(self, provider: Any) -> None:
        super().__init__()
        self._logger = provider.get_logger(LOGGER_NAME)

    def emit(self, record: logging.LogRecord) -> None:
        event: ChargebackEvent = record.chargeback_event  # type: ignore[attr-defined]
        attributes: dict[str, Any] = dict(event.dimensions)
        attributes["microsoft.custom_event.name"] = event.name
        attributes["microsoft.custom_measurements"] = json.dumps(dict(event.measurements))
        self._logger.emit(
            timestamp=int(event.timestamp.timestamp() * 1e9),
            body=event.name,
            attributes=attributes,
        )


def _events_logger(provider: Any) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(_OpenTelemetryHandler(provider))
    return logger


class _Pending:
    """A log record processor that holds records until the batch ends, then exports them in
    one synchronous call whose result the caller sees.

    Records are keyed by RequestId: when a failed batch is run again its events replace the
    ones still held, so a retry neither loses an event nor holds it twice. What was not
    accepted stays held and goes with the next export.
    """

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._records: dict[object, Any] = {}

    def __len__(self) -> int:
        return len(self._records)

    def on_emit(self, log_record: Any) -> None:
        from opentelemetry.sdk._logs import ReadableLogRecord

        record = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource,
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        attributes = log_record.log_record.attributes or {}
        key = attributes.get("RequestId") or id(record)
        self._records.pop(key, None)  # a re-emitted event goes to the end, in batch order
        self._records[key] = record

    def export(self) -> bool:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        if not self._records:
            return True
        try:
            result = self._exporter.export(list(self._records.values()))
        except Exception:  # the exporter should not raise; if it does, nothing was accepted
            logging.getLogger("chargeback").exception("chargeback: the exporter raised")
            return False
        # Anything but SUCCESS (a retryable failure, a 206 partial success, a non-retryable
        # status) means some events may not have been accepted: all are kept and sent again;
        # the ones that did arrive become duplicates that every query removes by RequestId.
        if result != LogRecordExportResult.SUCCESS:
            return False
        self._records = {}
        return True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.export()

    def shutdown(self) -> None:
        self._exporter.shutdown()


class AzureMonitorSink:
    """Sends events to Application Insights through the azure-monitor-opentelemetry exporter.

    By default the sink owns a provider whose exporter keeps no offline storage, sends once per
    attempt within ``timeout`` seconds, and reports its result, so a failure is seen and raised
    as `TelemetryNotAccepted`.

    With ``reuse_worker=True`` (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``: the Functions
    worker configured Azure Monitor itself) events go through the worker's provider instead of
    a second one, and `flush` forces it. That provider's batch processor does not report
    whether ingestion accepted the events, and its exporter keeps failures on local disk; the
    README ("Reliability") states the trade-off. The Bicep in ``infra/`` leaves it off.
    """

    #: Retries inside one flush before the batch is handed back to Event Hubs.
    attempts = 3

    def __init__(
        self,
        connection_string: str | None,
        *,
        cloud_role_name: str = "chargeback-processor",
        credential: Any = None,
        reuse_worker: bool = False,
        backoff_seconds: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        self._backoff = backoff_seconds
        self._timeout = timeout
        self._pending: _Pending | None = None
        if reuse_worker:
            from opentelemetry._logs import get_logger_provider

            self._provider: Any = get_logger_provider()
        else:
            self._provider = self._own_provider(connection_string, cloud_role_name, credential)
        self._logger = _events_logger(self._provider)

    def _own_provider(
        self, connection_string: str | None, role: str, credential: Any
    ) -> LoggerProvider:
        from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.resources import Resource

        exporter = AzureMonitorLogExporter(
            connection_string=connection_string,
            credential=credential,
            # No copy on local disk that an instance (Flex Consumption) can lose: a failure
            # is returned to us, and Event Hubs, which still holds the batch, is the store.
            disable_offline_storage=True,
            # Its client-side rate limiter drops what it defers when offline storage is off,
            # and still reports success; ingestion throttling (429, 439) comes back to us.
            max_envelopes_per_second=0,
            # One HTTP attempt per export: the retries are ours (`flush`) and Event Hubs'.
            retry_total=0,
            # Connect timeout, and azure-core's budget for the whole send; read timeout.
            timeout=self._timeout,
            read_timeout=self._timeout,
        )
        provider = LoggerProvider(resource=Resource.create({"service.name": role}))
        self._pending = _Pending(exporter)
        provider.add_log_record_processor(self._pending)  # type: ignore[arg-type]
        return provider

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureMonitorSink:
        return cls(
            settings.applicationinsights_connection_string,
            cloud_role_name=settings.cloud_role_name,
            credential=_credential(settings.applicationinsights_authentication_string),
            reuse_worker=settings.worker_telemetry_enabled,
            timeout=settings.export_timeout_seconds,
        )

    def emit(self, event: ChargebackEvent) -> None:
        record = self._logger.makeRecord(LOGGER_NAME, logging.INFO, "", 0, event.name, (), None)
        record.chargeback_event = event
        self._logger.handle(record)

    def flush(self) -> None:
        for attempt in range(self.attempts):
            if self._try_flush():
                return
            if attempt + 1 < self.attempts:
                time.sleep(self._backoff * 2**attempt)
        raise TelemetryNotAccepted(
            "Application Insights did not accept this batch's events; the batch will be retried"
        )

    def _try_flush(self) -> bool:
        if self._pending is not None:
            return self._pending.export()
        return bool(self._provider.force_flush())

    def close(self) -> None:
        if self._pending is not None:
            self._provider.shutdown()


def _credential(authentication_string: str | None) -> Any:
    """A managed identity credential from APPLICATIONINSIGHTS_AUTHENTICATION_STRING."""
    if not authentication_string:
        return None
    parts = dict(part.split("=", 1) for part in authentication_string.split(";") if "=" in part)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId"))


# --- Building the event ---------------------------------------------------------------------


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
