"""Chargeback for Azure OpenAI behind API Management: gateway messages in, Application Insights
custom events out, one per billable call.

The package's folders follow the data: `receive` → `gateway` (the message shapes) → `bodies`
(the OpenAI request and response) → `tokens` → `billing` (who pays, the price) → `emit` (the
event, its sinks, dead letters), driven by `pipeline.Processor`; `runtime` wires the Function's
processor from the app settings. `local` (the local store, KQL, the report) and `tools` (the
command line, accuracy, bench, send) run on a workstation and are not deployed.

What a caller of the library needs is exported here and pinned by a test; everything else is
internal and may change. The exception tree is in `chargeback.errors`.
"""

from chargeback.batches import BatchReport, Outcome, run_batches
from chargeback.billing.pricing import Pricing
from chargeback.emit import (
    EVENT_NAME,
    AzureMonitorSink,
    BlobDeadLetters,
    ChargebackEvent,
    DeadLetter,
    DeadLetterSink,
    DirectoryDeadLetters,
    EventSink,
    JsonlSink,
    MemoryDeadLetters,
    MemorySink,
)
from chargeback.errors import (
    BadMessage,
    ChargebackError,
    ConfigurationError,
    DeadLetterUnavailable,
    ImplausibleUsage,
    MalformedMessage,
    MessageTooLarge,
    TelemetryNotAccepted,
    TransientError,
    UnidentifiableMessage,
    UnknownModel,
    UserError,
)
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage, partition_id
from chargeback.runtime import process_batch
from chargeback.settings import Settings, get_settings, load_settings
from chargeback.tokens import TokenCounts, get_encoding

__all__ = [
    "EVENT_NAME",
    "AzureMonitorSink",
    "BadMessage",
    "BatchReport",
    "BlobDeadLetters",
    "ChargebackError",
    "ChargebackEvent",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterSink",
    "DeadLetterUnavailable",
    "DirectoryDeadLetters",
    "EventSink",
    "ImplausibleUsage",
    "JsonlSink",
    "MalformedMessage",
    "MemoryDeadLetters",
    "MemorySink",
    "MessageTooLarge",
    "Outcome",
    "Pricing",
    "Processor",
    "RawMessage",
    "Settings",
    "TelemetryNotAccepted",
    "TokenCounts",
    "TransientError",
    "UnidentifiableMessage",
    "UnknownModel",
    "UserError",
    "get_encoding",
    "get_settings",
    "load_settings",
    "partition_id",
    "process_batch",
    "run_batches",
]
