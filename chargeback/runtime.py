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

from chargeback.batches import BatchReport
from chargeback.emit import AzureMonitorSink, BlobDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import get_settings
from chargeback.tokens import get_encoding

__all__ = ["default_processor", "process_batch", "reset", "warm_up"]

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


def warm_up() -> None:
    """Load the tokenizer of today's models (``o200k_base``: GPT-4o, 4.1, 5, the o-series) now,
    when the Function is indexed and the process holds no batch yet. Loading it takes about
    25 MB more than it keeps (tiktoken is handed every rank as a Python dict while its Rust core
    builds its own tables); loaded inside the first batch, that peak adds to the batch's. The
    first batch that estimates would load it anyway (README, "Performance")."""
    get_encoding("o200k_base")


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
