"""Where events go: the protocol every sink follows, and the two simple sinks (memory, JSON
lines). Application Insights is `chargeback.emit.azure_monitor`."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from chargeback.emit.event import ChargebackEvent

__all__ = ["EventSink", "JsonlSink", "MemorySink"]


class EventSink(Protocol):
    """Where events go, a batch at a time.

    `send` delivers exactly the events it is given and returns only once they were accepted;
    it raises a `TransientError` when they were not. It holds nothing between calls, so the
    batches of several partitions, which the Functions runtime runs at once on its thread pool,
    never see, send or drop each other's events.
    """

    def send(self, events: Sequence[ChargebackEvent]) -> None: ...


@dataclass
class MemorySink:
    """Keeps events in a list: for tests and the benchmark."""

    events: list[ChargebackEvent] = field(default_factory=list)
    #: How many batches were sent (one `send` per batch, empty batches included).
    sends: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, events: Sequence[ChargebackEvent]) -> None:
        with self._lock:
            self.events.extend(events)
            self.sends += 1


class JsonlSink:
    """One JSON line per event on a text stream (standard output by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def send(self, events: Sequence[ChargebackEvent]) -> None:
        lines = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in events)
        with self._lock:  # one batch's lines together, never interleaved with another's
            self._stream.write(lines)
            self._stream.flush()
