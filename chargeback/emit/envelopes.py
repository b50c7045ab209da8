"""Application Insights envelopes for our events, written as plain dicts and serialised once with
orjson: the JSON the azure-monitor-opentelemetry exporter writes for them, without its models.

The exporter turns each event into an OpenTelemetry log record, then into a `TelemetryItem`
model, then serialises the models; measured on a batch of 100 events that is most of what the
Function spends (issue 18: ``model_base._serialize`` was the largest single cost). For our
events its conversion (``export/logs/_exporter.py``, ``_convert_log_to_envelope``, 1.0.0b58)
comes down to:

- ``name`` ``Microsoft.ApplicationInsights.Event``, ``iKey`` the connection string's key,
  ``time`` the event's time (through nanoseconds and back, as the record carries it);
- ``tags``: the exporter's process context (``_utils.azure_monitor_context``: device, locale,
  SDK version), the resource's part A (``_populate_part_a_fields``: cloud role and instance)
  and the empty trace context (``ai.operation.id`` and ``ai.operation.parentId`` of zeros);
- ``data``: ``baseType`` ``EventData``, ``baseData`` ``{ver: 2, name, properties,
  measurements}``; properties are the dimensions (keys of 1 to 150 characters, values cut at
  8,192) plus ``logger_name``; measurements the finite numbers (keys cut at 150).

The tags other attributes would add (``enduser.id``, ``session.id``, ``client.address``,
``ai.operation.name``, a synthetic user agent) and the other telemetry types (exceptions,
availability) are never produced by our events: their dimension keys are CamelCase names
(CONTRACTS §2). ``tests/emit/test_envelopes.py`` compares, field by field, what an ingestion
endpoint receives from this writer and from the exporter's own conversion of the same events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from chargeback.emit.event import ChargebackEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = ["INGESTION_WINDOW", "Envelope", "EnvelopeBatch", "EnvelopeWriter", "exporter_tags"]

#: What the exporter keeps of a property or measurement key, and of a property value.
_MAX_KEY = 150
_MAX_VALUE = 8 * 1024


class _EventData:
    """What the exporter's SDK statistics read of an envelope (``_get_telemetry_type``:
    ``envelope.data.base_type``), so that it counts ours as custom events."""

    base_type = "EventData"
    base_data = None


class Envelope(dict[str, Any]):
    """One envelope: a plain dict (orjson writes it as one), which the exporter's statistics
    recognise as a custom event."""

    data = _EventData


class EnvelopeBatch(list[Envelope]):
    """A batch's envelopes and their JSON, serialised once."""

    def __init__(self, envelopes: list[Envelope]) -> None:
        super().__init__(envelopes)
        try:
            self.body: bytes = orjson.dumps(envelopes)
        except TypeError:
            # orjson refuses a lone surrogate (which no decoded message holds: orjson refuses
            # them there too); the exporter's json.dumps writes it as a \u escape: so here.
            self.body = json.dumps(envelopes).encode()


def exporter_tags(resource: Resource) -> dict[str, str]:
    """The tags the exporter gives every log record of ``resource`` that has no trace context."""
    from azure.monitor.opentelemetry.exporter import _utils

    tags = {**_utils.azure_monitor_context, **_utils._populate_part_a_fields(resource)}
    tags["ai.operation.id"] = "0" * 32
    tags["ai.operation.parentId"] = "0" * 16
    # Its keys are `ContextTagKeys`, a str enum, written as their text: plain strings here.
    return {str.__str__(key): value for key, value in tags.items()}


#: Application Insights refuses an envelope whose ``time`` is more than 48 hours old ("103:
#: Field 'time' on type 'Envelope' is older than the allowed min date. Expected: now -
#: 172800000ms", microsoft/ApplicationInsights-node.js#1466; the .NET SDK's channel drops stored
#: telemetry older than 2 days for that reason, microsoft/ApplicationInsights-dotnet#278). After an
#: outage longer than that, or when a dead letter is replayed days later, an envelope stamped
#: with its call's time would be refused for good and its partition stopped. So an older event's
#: envelope is stamped at the send time minus this (an hour inside the window); the call's own
#: time stays in its ``Timestamp`` dimension, which every query bills by.
INGESTION_WINDOW = timedelta(hours=47)


class EnvelopeWriter:
    """Writes our events as the exporter would, for one instrumentation key and set of tags.
    ``clock`` tells the send time, for the ingestion window (`INGESTION_WINDOW`); None writes
    every time as the exporter does, older than the window or not."""

    def __init__(
        self,
        instrumentation_key: str,
        tags: Mapping[str, str],
        logger_name: str,
        clock: Callable[[], datetime] | None = lambda: datetime.now(UTC),
    ):
        self._ikey = instrumentation_key
        self._tags = dict(tags)
        self._logger_name = logger_name
        self._clock = clock

    def batch(self, events: Sequence[ChargebackEvent]) -> EnvelopeBatch:
        oldest = None if self._clock is None else (self._clock() - INGESTION_WINDOW).timestamp()
        return EnvelopeBatch([self.envelope(event, oldest) for event in events])

    def envelope(self, event: ChargebackEvent, oldest: float | None = None) -> Envelope:
        """``oldest``: the earliest time (POSIX seconds) ingestion still accepts, or None."""
        properties = _properties(event.dimensions)
        properties.setdefault("logger_name", self._logger_name)
        moment = event.timestamp
        if oldest is not None and moment.timestamp() < oldest:
            moment = datetime.fromtimestamp(oldest, UTC)
        return Envelope(
            name="Microsoft.ApplicationInsights.Event",
            time=envelope_time(moment),
            iKey=self._ikey,
            tags=self._tags,  # the same for every envelope, and never changed: shared
            data={
                "baseType": "EventData",
                "baseData": {
                    "ver": 2,
                    "name": event.name,
                    "properties": properties,
                    "measurements": _measurements(event.measurements),
                },
            },
        )


def envelope_time(moment: datetime) -> str:
    """The envelope's ``time``: the log record holds integer nanoseconds (``int(timestamp() *
    1e9)``); the exporter turns them back into a datetime (``fromtimestamp(ns / 1e9)``) and
    writes ISO 8601 with ``Z``, microseconds only when not zero."""
    nanoseconds = int(moment.timestamp() * 1e9)
    text = datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC).isoformat()
    return text.replace("+00:00", "Z")


def _properties(dimensions: Mapping[str, str]) -> dict[str, str]:
    """The exporter's ``_filter_custom_properties``: keys of 1 to 150 characters, no None
    value, values as strings cut at 8 KB."""
    properties = dict(dimensions)
    # Our dimensions are short strings under short names: told in a few passes that run in C,
    # the copy is the answer (joining fails unless every value is a string); otherwise the
    # exporter's rules, one by one.
    values = properties.values()
    try:
        short = len("".join(values)) <= _MAX_VALUE or max(map(len, values)) <= _MAX_VALUE
        if short and "" not in properties and max(map(len, properties), default=0) <= _MAX_KEY:
            return properties
    except TypeError:
        pass
    return {
        key: str(value)[:_MAX_VALUE]
        for key, value in dimensions.items()
        if key and len(key) <= _MAX_KEY and value is not None
    }


def _measurements(values: Mapping[str, float]) -> dict[str, float]:
    """The exporter's ``_filter_custom_measurements``, after the JSON round trip of the
    record's attribute: numbers that are not booleans and are finite as floats; keys cut at
    150."""
    found = dict(values)
    numbers = found.values()
    # Finite floats under short names (ours): the copy. A sum of floats is finite only when
    # every one is (an infinity or a NaN carries through; an overflow fails the test too).
    if (
        found
        and set(map(type, found)) == {str}
        and set(map(type, numbers)) == {float}
        and math.isfinite(sum(numbers))
        and min(map(len, found)) >= 1
        and max(map(len, found)) <= _MAX_KEY
    ):
        return found
    return _measurements_one_by_one(values)


def _measurements_one_by_one(values: Mapping[str, float]) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in values.items():
        if not key or not isinstance(key, str):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        try:
            number = float(value)
        except OverflowError:
            continue
        if math.isfinite(number):
            found[key[:_MAX_KEY]] = number
    return found
