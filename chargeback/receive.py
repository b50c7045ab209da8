"""Stage 1: what arrives from Event Hubs, as plain data: the body's bytes and where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["RawMessage", "partition_id"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One Event Hub event: the bytes exactly as received, plus its position in the hub."""

    body: bytes
    partition: str | None = None
    sequence_number: int | None = None
    offset: str | None = None
    enqueued_time: datetime | None = None

    def describe(self) -> str:
        """Where the message sits in the hub, for error messages and dead-letter names."""
        if self.partition is None:
            return "message" if self.sequence_number is None else f"line {self.sequence_number}"
        return f"partition {self.partition} sequence {self.sequence_number}"


def partition_id(trigger_metadata: Mapping[str, Any] | None) -> str | None:
    """The partition of a batch, from the trigger metadata the Functions host passes."""
    context = (trigger_metadata or {}).get("PartitionContext")
    if isinstance(context, Mapping):
        value = context.get("PartitionId")
        return None if value is None else str(value)
    return None
