"""The process-wide processor the Function uses, built once from the app settings.

The Functions runtime runs synchronous functions on its own thread pool, and one instance owns
several Event Hubs partitions, so the first batches of every partition can arrive together on a
cold start: the processor is built under a lock, exactly once. It is shared safely because it
holds no per-batch state: each batch's events are delivered and confirmed by that batch
(`EventSink.send`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from chargeback.emit import AzureMonitorSink, BlobDeadLetters
from chargeback.pipeline import BatchReport, Processor
from chargeback.receive import RawMessage
from chargeback.settings import get_settings

__all__ = ["default_processor", "process_batch", "reset"]

_lock = threading.Lock()
_processor: Processor | None = None


def default_processor() -> Processor:
    """Sinks from the app settings: Application Insights for events, Blob Storage for dead
    letters. Raises `ConfigurationError` naming the setting to fix (and again on the next
    batch: a processor is kept only once it was built)."""
    global _processor  # noqa: PLW0603 - the one process-wide instance, by design
    if _processor is None:
        with _lock:
            if _processor is None:
                settings = get_settings()
                _processor = Processor(
                    settings,
                    events=AzureMonitorSink.from_settings(settings),
                    dead_letters=BlobDeadLetters.from_settings(settings),
                )
    return _processor


def process_batch(messages: Iterable[RawMessage]) -> BatchReport:
    """What the Function calls for each batch of events."""
    return default_processor().process_batch(messages)


def reset() -> None:
    """Forget the processor and the settings, so the next batch reads the app settings again
    (for tests that change them)."""
    global _processor  # noqa: PLW0603
    with _lock:
        _processor = None
        get_settings.cache_clear()
