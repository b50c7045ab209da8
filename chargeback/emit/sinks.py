"""Where events go: the protocol every sink follows, and the two simple sinks (memory, JSON
lines). Application Insights is `chargeback.emit.azure_monitor`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import IO, Protocol

from chargeback.emit.event import ChargebackEvent

__all__ = ["EventSink", "JsonlSink", "MemorySink"]


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
