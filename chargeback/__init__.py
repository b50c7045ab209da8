"""Chargeback for Azure OpenAI behind API Management: gateway messages in, Application Insights
custom events out, one per billable call.

The package reads as the data flows: `receive` → `gateway` → `openai_bodies` → `tokens` →
`events`, driven by `pipeline.Processor`.
"""

from chargeback.bodies import Exchange, parse_exchange, route
from chargeback.emit.deadletter import (
    DeadLetter,
    DeadLetterSink,
    DirectoryDeadLetters,
    MemoryDeadLetters,
)
from chargeback.emit.event import (
    EVENT_NAME,
    AzureMonitorSink,
    ChargebackEvent,
    EventSink,
    JsonlSink,
    MemorySink,
    build_event,
)
from chargeback.errors import (
    BadMessage,
    ChargebackError,
    ConfigurationError,
    DeadLetterUnavailable,
    MalformedMessage,
    MessageTooLarge,
    TelemetryNotAccepted,
    TransientError,
    UnidentifiableMessage,
    UnknownModel,
)
from chargeback.gateway import GatewayCall, mask_key, parse_gateway_message
from chargeback.pipeline import BatchReport, Outcome, Processor
from chargeback.receive import RawMessage, partition_id
from chargeback.runtime import process_batch
from chargeback.settings import Settings, get_settings, load_settings
from chargeback.tokens import (
    TokenCounts,
    count_text,
    encoding_for_model,
    estimate,
    usage_from_api,
)

__all__ = [
    "EVENT_NAME",
    "AzureMonitorSink",
    "BadMessage",
    "BatchReport",
    "ChargebackError",
    "ChargebackEvent",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterSink",
    "DeadLetterUnavailable",
    "DirectoryDeadLetters",
    "EventSink",
    "Exchange",
    "GatewayCall",
    "JsonlSink",
    "MalformedMessage",
    "MemoryDeadLetters",
    "MemorySink",
    "MessageTooLarge",
    "Outcome",
    "Processor",
    "RawMessage",
    "Settings",
    "TelemetryNotAccepted",
    "TokenCounts",
    "TransientError",
    "UnidentifiableMessage",
    "UnknownModel",
    "build_event",
    "count_text",
    "encoding_for_model",
    "estimate",
    "get_settings",
    "load_settings",
    "mask_key",
    "parse_exchange",
    "parse_gateway_message",
    "partition_id",
    "process_batch",
    "route",
    "usage_from_api",
]
