"""Application Insights: events written as envelopes (`chargeback.emit.envelopes`) and sent
through the azure-monitor-opentelemetry exporter's own transport, delivery checked.

Events never go through Python logging: the root logger, which the Functions host turns into
traces, never sees them, so each call is exactly one ``customEvents`` row and no duplicate trace.

`AzureMonitorSink.send` sends one batch's events synchronously with the exporter's offline
storage off, and raises `TelemetryNotAccepted` when the ingestion endpoint did not accept them,
so the Function fails and Event Hubs runs the batch again (README, "Reliability").

The envelopes are written as plain dicts and serialised once (`chargeback.emit.envelopes`);
they are sent, and the answer read, by the exporter's own code (`chargeback.emit.transmit`
says how and why).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chargeback.emit.envelopes import EnvelopeBatch, EnvelopeWriter, exporter_tags
from chargeback.emit.event import ChargebackEvent
from chargeback.errors import TelemetryNotAccepted

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from chargeback.settings import Settings

__all__ = ["LOGGER_NAME", "AzureMonitorSink"]

LOGGER_NAME = "chargeback.events"


class AzureMonitorSink:
    """Sends events to Application Insights through the azure-monitor-opentelemetry exporter's
    transport.

    Each `send` writes exactly the events it is given as one request body and sends it in one
    synchronous call, whose result it reads: the exporter keeps no offline storage, sends once
    per attempt within ``timeout`` seconds, and anything but full success raises
    `TelemetryNotAccepted` after `attempts` tries. Nothing is held between calls, so concurrent
    batches (several partitions on the runtime's thread pool) each deliver and confirm their
    own events.

    With ``reuse_worker=True`` (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``: the Functions
    worker configured Azure Monitor itself) events go through the worker's provider as log
    records instead, and `send` forces it to flush. That provider's batch processor does not
    report whether ingestion accepted the events, and its exporter keeps failures on local
    disk; the README ("Reliability") states the trade-off. The Bicep in ``infra/`` leaves it off.
    """

    #: Tries inside one send before the batch is handed back to Event Hubs.
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
        clock: Callable[[], datetime] | None = lambda: datetime.now(UTC),
    ) -> None:
        """``clock`` tells the send time: an event older than Application Insights' ingestion
        window is stamped inside it (`chargeback.emit.envelopes.INGESTION_WINDOW`); None
        stamps every event with its own time, as the exporter does."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._backoff = backoff_seconds
        self._worker: Any = None
        self._exporter: Any = None
        self._writer: EnvelopeWriter | None = None
        # The cloud role (and a random instance id, as the exporter's default resource has).
        self.resource: Resource = Resource.create({"service.name": cloud_role_name})
        # The exporter names the events' logger in a `logger_name` property, as before.
        self._scope = InstrumentationScope(LOGGER_NAME)
        if reuse_worker:
            from opentelemetry._logs import get_logger_provider

            self._worker = get_logger_provider()
        else:
            self._exporter = _exporter(connection_string, credential, timeout)
            self._writer = EnvelopeWriter(
                self._exporter.instrumentation_key,
                exporter_tags(self.resource),
                LOGGER_NAME,
                clock,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureMonitorSink:
        return cls(
            settings.applicationinsights_connection_string,
            cloud_role_name=settings.cloud_role_name,
            credential=_credential(settings.applicationinsights_authentication_string),
            reuse_worker=settings.worker_telemetry_enabled,
            timeout=settings.export_timeout_seconds,
        )

    def send(self, events: Sequence[ChargebackEvent]) -> None:
        if not events:
            return
        if self._writer is None:
            self._through_worker(events)
            return
        batch = self._writer.batch(events)
        for attempt in range(self.attempts):
            if self._export(batch):
                return
            if attempt + 1 < self.attempts:
                time.sleep(self._backoff * 2**attempt)
        raise TelemetryNotAccepted(
            "Application Insights did not accept this batch's events; the batch will be retried"
        )

    def record(self, event: ChargebackEvent) -> Any:
        """One OpenTelemetry log record carrying exactly the event's attributes: what the
        worker's provider is given, and what the exporter converts to the same envelope as
        `chargeback.emit.envelopes` writes."""
        from opentelemetry._logs import LogRecord
        from opentelemetry.sdk._logs import ReadableLogRecord

        attributes: dict[str, Any] = dict(event.dimensions)
        attributes["microsoft.custom_event.name"] = event.name
        attributes["microsoft.custom_measurements"] = json.dumps(dict(event.measurements))
        record = LogRecord(
            timestamp=int(event.timestamp.timestamp() * 1e9), body=event.name, attributes=attributes
        )
        return ReadableLogRecord(record, resource=self.resource, instrumentation_scope=self._scope)

    def _export(self, batch: EnvelopeBatch) -> bool:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        try:
            result = self._exporter.export_envelopes(batch)
        except Exception:  # the exporter should not raise; if it does, nothing was accepted
            logging.getLogger("chargeback").exception("chargeback: the exporter raised")
            return False
        # Anything but SUCCESS (a retryable failure, a 206 partial success, a non-retryable
        # status) means some events may not have been accepted: all are sent again; the ones
        # that did arrive become duplicates that every query removes by RequestId.
        return bool(result == LogRecordExportResult.SUCCESS)

    def _through_worker(self, events: Sequence[ChargebackEvent]) -> None:
        logger = self._worker.get_logger(LOGGER_NAME)
        for event in events:
            logger.emit(self.record(event).log_record)
        if not self._worker.force_flush():
            raise TelemetryNotAccepted("the worker's Azure Monitor provider did not flush")

    def close(self) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()


def _exporter(connection_string: str | None, credential: Any, timeout: float) -> Any:
    from chargeback.emit.transmit import EnvelopeExporter

    return EnvelopeExporter(
        connection_string=connection_string,
        credential=credential,
        # No copy on local disk that an instance (Flex Consumption) can lose: a failure is
        # returned to us, and Event Hubs, which still holds the batch, is the store.
        disable_offline_storage=True,
        # Its client-side rate limiter drops what it defers when offline storage is off, and
        # still reports success; ingestion throttling (429, 439) comes back to us.
        max_envelopes_per_second=0,
        # One HTTP attempt per export: the retries are ours (`send`) and Event Hubs'.
        retry_total=0,
        # Connect timeout, and azure-core's budget for the whole send; read timeout.
        timeout=timeout,
        read_timeout=timeout,
    )


def _credential(authentication_string: str | None) -> Any:
    """A managed identity credential from APPLICATIONINSIGHTS_AUTHENTICATION_STRING."""
    if not authentication_string:
        return None
    parts = dict(part.split("=", 1) for part in authentication_string.split(";") if "=" in part)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId"))
