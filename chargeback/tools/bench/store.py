"""The local store's rate (issue 12: it must ingest at least 5,000 events a second here), in
wall-clock time, since what is measured is how long a person waits:

- **ingest alone**: the mix's events, written as the sink writes them (`EnvelopeWriter`,
  serialised once) in batches of 100, posted one after another over one kept-alive connection
  to a local store in a process of its own (`chargeback.tools.bench.endpoint`, ``store``):
  HTTP, parsing and the inserts into DuckDB (``customEvents`` and ``AppEvents``), nothing else;
- **replay**: the ``replay`` command's path on the mix's messages (`Processor`, `run_batches`,
  the lines of a file), once into the local store through the real exporter, with the store in
  the replaying process as ``replay`` runs it, and once into ``--sink jsonl``, the least a
  replay can do with its events: events a second for each, in the same run.
"""

from __future__ import annotations

import http.client
import io
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from chargeback.tools.bench.mix import BATCH_SIZE, Sample

if TYPE_CHECKING:
    from chargeback.emit import ChargebackEvent, EventSink

__all__ = ["IngestRate", "ReplayRates", "ingest_rate", "replay_rates"]

#: The rate the local store must keep up with (issue 12).
TARGET_EVENTS_PER_SECOND = 5000


@dataclass(frozen=True)
class IngestRate:
    envelopes: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.envelopes / self.seconds


@dataclass(frozen=True)
class ReplayRates:
    messages: int
    events: int
    store_seconds: float
    jsonl_seconds: float

    @property
    def store_per_second(self) -> float:
        return self.events / self.store_seconds

    @property
    def jsonl_per_second(self) -> float:
        return self.events / self.jsonl_seconds


def _events(samples: list[Sample]) -> list[ChargebackEvent]:
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings
    from chargeback.tools.bench.measure import as_raw

    sink = MemorySink()
    Processor(load_settings(), sink, MemoryDeadLetters()).process_batch(
        as_raw([s.body for s in samples])
    )
    return list(sink.events)


def ingest_rate(samples: list[Sample], envelopes: int, connection: str) -> IngestRate:
    """``envelopes`` envelopes (the mix's events over and over) posted to the store at
    ``connection``, in batches of 100; the wall time from the first post to the last answer."""
    from chargeback.emit.envelopes import EnvelopeWriter
    from chargeback.local.store import LOCAL_IKEY

    events = _events(samples)
    writer = EnvelopeWriter(LOCAL_IKEY, {"ai.cloud.role": "chargeback-bench"}, "chargeback.events")
    bodies: list[tuple[int, bytes]] = []
    count = 0
    while count < envelopes and events:
        for start in range(0, len(events), BATCH_SIZE):
            chunk = events[start : start + BATCH_SIZE][: envelopes - count]
            if not chunk:
                break
            bodies.append((len(chunk), writer.batch(chunk).body))
            count += len(chunk)
    endpoint = urlparse(connection.split("IngestionEndpoint=")[1].split(";", maxsplit=1)[0])
    client = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port)
    headers = {"Content-Type": "application/json"}
    began = time.perf_counter()
    for size, body in bodies:
        client.request("POST", "/v2.1/track", body, headers)
        answer = client.getresponse()
        accepted = answer.read()
        if answer.status != 200 or f'"itemsAccepted": {size}'.encode() not in accepted:
            raise RuntimeError(f"the local store did not accept a batch: {answer.status}")
    seconds = time.perf_counter() - began
    client.close()
    return IngestRate(count, seconds)


def replay_rates(samples: list[Sample], messages: int) -> ReplayRates:
    """``messages`` messages (the mix over and over) replayed from a file into the local store
    and into jsonl; the wall time of each replay."""
    from chargeback.emit import JsonlSink

    bodies = [s.body for s in samples]
    lines = [bodies[i % len(bodies)] for i in range(messages)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "messages.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        with ExitStack() as stack:
            from chargeback.settings import load_settings
            from chargeback.tools.replay import local_sink

            settings = load_settings()
            store = local_sink(Path(folder) / "replay.duckdb", settings, stack)
            store_seconds, events = _replay(path, store, Path(folder) / "dl-store")
        with open(os.devnull, "w", encoding="utf-8") as devnull:
            jsonl_seconds, jsonl_events = _replay(path, JsonlSink(devnull), Path(folder) / "dl")
    if jsonl_events != events:
        raise RuntimeError(f"replay emitted {events} events into the store, {jsonl_events} jsonl")
    return ReplayRates(messages, events, store_seconds, jsonl_seconds)


def _replay(path: Path, sink: EventSink, dead_letters: Path) -> tuple[float, int]:
    """What ``replay FILE`` does with a sink: wall seconds and events emitted."""
    from chargeback.batches import run_batches
    from chargeback.emit import DirectoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings
    from chargeback.tools.replay import read_messages

    processor = Processor(load_settings(), sink, DirectoryDeadLetters(dead_letters))
    start = time.perf_counter()
    with path.open("rb") as lines:
        report = run_batches(processor, read_messages(lines), retries=0, errors=io.StringIO())
    return time.perf_counter() - start, report.emitted
