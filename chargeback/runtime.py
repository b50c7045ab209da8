"""The process-wide processor the Function uses, built once from the app settings."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from chargeback.emit import AzureMonitorSink
from chargeback.emit.deadletter import BlobDeadLetters
from chargeback.pipeline import BatchReport, Processor
from chargeback.receive import RawMessage
from chargeback.settings import get_settings

__all__ = ["default_processor", "process_batch"]


@functools.cache
def default_processor() -> Processor:
    """Sinks from the app settings: Application Insights for events, Blob Storage for dead
    letters. Raises `ConfigurationError` naming the setting to fix."""
    settings = get_settings()
    return Processor(
        settings,
        events=AzureMonitorSink.from_settings(settings),
        dead_letters=BlobDeadLetters.from_settings(settings),
    )


def process_batch(messages: Iterable[RawMessage]) -> BatchReport:
    """What the Function calls for each batch of events."""
    return default_processor().process_batch(messages)
