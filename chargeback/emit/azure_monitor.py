"""Application Insights: events through the real azure-monitor-opentelemetry exporter, delivery
checked.

We log events on a dedicated Python logger, ``chargeback.events``, that does not propagate: the
root logger, which the Functions host turns into traces, never sees them, so each call is exactly
one ``customEvents`` row and no duplicate trace.

`AzureMonitorSink` exports the batch synchronously at `flush` with the exporter's offline storage
off, and raises `TelemetryNotAccepted` when the ingestion endpoint did not accept it, so the
Function fails and Event Hubs runs the batch again (README, "Reliability").
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from chargeback.emit.event import ChargebackEvent
from chargeback.errors import TelemetryNotAccepted

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

    from chargeback.settings import Settings

__all__ = ["LOGGER_NAME", "AzureMonitorSink"]

LOGGER_NAME = "chargeback.events"


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
