"""Pre-serialised envelopes through the azure-monitor-opentelemetry exporter's own transport and
its own reading of the answer.

The exporter's ``export`` builds a `TelemetryItem` model per log record and hands the list to
``BaseExporter._transmit`` (``export/_base.py``, 1.0.0b58), which calls the generated client's
``track`` and reads the answer: a 200 without errors is SUCCESS; a 206 is read error by error
(sampled out, retryable, dropped) and is never SUCCESS; a retryable status (401, 403, 408, 429,
500, 502, 503, 504), a throttle (402, 439) and any other status fail; a 307/308 within the same
ingestion domain is followed; a connection or read error is retryable. Building and serialising
the models was most of what the Function spent (issue 18), so the envelopes are written as plain
dicts and serialised once with orjson (`chargeback.emit.envelopes`), and everything after that
is the exporter's own:

- `EnvelopeExporter.export_envelopes` is ``AzureMonitorLogExporter.export`` without the record
  conversion: the same ``_transmit`` (its reading of the answer, redirects and SDK statistics
  included), the same ``_handle_transmit_from_storage`` and the same mapping to a
  ``LogRecordExportResult``. The reading of the answer is today's by construction, not a copy.
- ``_transmit`` calls ``self.client.track(envelopes, cls=...)``. The exporter's client is wrapped
  (`_SerialisedTrack`) so that ``track`` is handed the batch's bytes instead of the list. The
  generated ``track`` sends a bytes body as it is (``isinstance(body, (IOBase, bytes))``, its
  ``IO[bytes]`` overload) and runs the same request through the same azure-core pipeline:
  request id, headers, user agent, proxy, content decoding, redirects off (the exporter follows
  them itself), the retry policy (``retry_total=0``), the credential's bearer token policy
  (``_get_auth_policy``: the managed identity), logging; then the same error map and
  ``TrackResponse``.

Sending through ``client._client.send_request`` or the pipeline's ``run`` would keep the
transport as well, but would need a copy of ``_transmit``'s reading of the answer (about 200
lines: 206 handling, redirects, statistics) that would drift from the exporter's. Going through
``_transmit`` keeps the reading exact. Both depend on the exporter's internals (``_transmit``,
``_handle_transmit_from_storage``, ``client``, ``_instrumentation_key``): ``requirements.txt``
pins the exporter, and ``tests/emit/test_envelopes.py`` and the reliability tests fail if they
change under us.
"""

from __future__ import annotations

import logging
from typing import Any

from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _get_log_export_result
from opentelemetry.sdk._logs.export import LogRecordExportResult

from chargeback.emit.envelopes import EnvelopeBatch

__all__ = ["EnvelopeExporter"]

log = logging.getLogger("chargeback")


class _SerialisedTrack:
    """The exporter's generated client, whose ``track`` sends a batch's serialised bytes."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def _config(self) -> Any:
        # `_transmit` reads the redirect policy and changes the host here on a redirect.
        return self._client._config

    def track(self, envelopes: EnvelopeBatch, **kwargs: Any) -> Any:
        return self._client.track(envelopes.body, **kwargs)

    def close(self) -> None:
        self._client.close()


class EnvelopeExporter(AzureMonitorLogExporter):
    """The log exporter, sending envelopes written elsewhere."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = _SerialisedTrack(self.client)  # type: ignore[assignment]

    @property
    def instrumentation_key(self) -> str:
        return str(self._instrumentation_key or "")

    def export_envelopes(self, batch: EnvelopeBatch) -> LogRecordExportResult:
        """``AzureMonitorLogExporter.export`` for envelopes already written."""
        try:
            result = self._transmit(batch)  # type: ignore[arg-type]
            self._handle_transmit_from_storage(batch, result)  # type: ignore[arg-type]
        except Exception:  # as export() does: any exception is a failure not to retry
            log.exception("chargeback: exception while exporting the events")
            return LogRecordExportResult.FAILURE
        return _get_log_export_result(result)
