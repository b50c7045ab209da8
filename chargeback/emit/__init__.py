"""Stage 6: what leaves the process. Each billable call becomes one custom event (CONTRACTS §2),
delivered to a sink that confirms it; a message that can never be processed becomes a dead
letter, kept byte for byte."""

from chargeback.emit.azure_monitor import AzureMonitorSink
from chargeback.emit.deadletter import (
    BlobDeadLetters,
    DeadLetter,
    DeadLetterSink,
    DirectoryDeadLetters,
    MemoryDeadLetters,
)
from chargeback.emit.event import EVENT_NAME, ChargebackEvent, build_event
from chargeback.emit.sinks import EventSink, JsonlSink, MemorySink

__all__ = [
    "EVENT_NAME",
    "AzureMonitorSink",
    "BlobDeadLetters",
    "ChargebackEvent",
    "DeadLetter",
    "DeadLetterSink",
    "DirectoryDeadLetters",
    "EventSink",
    "JsonlSink",
    "MemoryDeadLetters",
    "MemorySink",
    "build_event",
]
