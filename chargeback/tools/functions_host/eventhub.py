"""An Event Hubs batch as the Functions host hands it to a Python worker: the InvocationRequest
for a trigger with ``cardinality: many`` and ``dataType: binary``.

What the host puts in it, and in which TypedData form:

- The trigger input: the bodies as ``byte[][]``, sent as ``collection_bytes`` because the worker
  declares the ``TypedDataCollection`` capability (azure-functions-host,
  src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs, ``ToRpc``).
- The trigger metadata: the Event Hubs extension's binding data for a batch
  (Azure/azure-sdk-for-net, sdk/eventhub/Microsoft.Azure.WebJobs.Extensions.EventHubs/src/
  Triggers/EventHubTriggerBindingStrategy.cs, ``GetBindingData``/``AddBindingData``):
  ``TriggerPartitionContext``, ``PartitionContext``, ``PartitionKeyArray``, ``OffsetArray``,
  ``OffsetStringArray``, ``SequenceNumberArray``, ``EnqueuedTimeUtcArray``,
  ``PropertiesArray`` and ``SystemPropertiesArray`` (each entry the event's AMQP system
  properties plus ``SequenceNumber``, ``Offset``, ``OffsetString``, ``PartitionKey``,
  ``EnqueuedTimeUtc``). azure.functions reads ``SystemPropertiesArray`` to tell a batch from a
  single event and to give each event its position (azure/functions/eventhub.py).
- Each value through the same ``ToRpc``: ``string[]`` as ``collection_string`` (null and empty
  entries dropped: the Python worker does not declare IncludeEmptyEntriesInMessagePayload),
  ``long[]`` as ``collection_sint64``, every other object as ``json`` (Newtonsoft.Json's
  defaults). A value that is null is not sent at all (ScriptInvocationContextExtensions.cs,
  ``ShouldSkipBindingData``), nor is the in-memory ``sys`` binding data.

Newtonsoft writes a ``DateTime`` of unspecified kind without an offset; ``EnqueuedTimeUtc`` is
``EventData.EnqueuedTime.DateTime``, of unspecified kind, so it arrives without "Z". The AMQP
annotation ``x-opt-enqueued-time`` is a UTC ``DateTime`` and arrives with it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

__all__ = ["EventHubBatch", "invocation_request"]


def _dotnet(moment: datetime, *, utc: bool) -> str:
    """A DateTime as Newtonsoft.Json writes it: 7 fraction digits, trailing zeros dropped."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}0".rstrip("0")
    return text + (f".{fraction}" if fraction else "") + ("Z" if utc else "")


@dataclass(frozen=True)
class EventHubBatch:
    """A batch of events from one partition, as the trigger delivers it."""

    bodies: Sequence[bytes]
    partition: str = "0"
    first_sequence: int = 0
    #: Byte position of the first event in the partition; the next ones follow it.
    first_offset: int = 0
    hub: str = "gateway-messages"
    consumer_group: str = "chargeback-processor"
    namespace: str = "localhost"
    enqueued: datetime = datetime(2026, 11, 20, 10, 0, 1, 123000, tzinfo=UTC)
    partition_key: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def positions(self) -> list[tuple[int, int, datetime]]:
        """(sequence number, offset, enqueued time) of each event."""
        offset, found = self.first_offset, []
        for i, body in enumerate(self.bodies):
            found.append(
                (self.first_sequence + i, offset, self.enqueued + timedelta(milliseconds=i))
            )
            offset += len(body)
        return found

    def system_properties(self) -> list[dict[str, Any]]:
        return [
            {
                "x-opt-sequence-number": sequence,
                "x-opt-offset": str(offset),
                "x-opt-enqueued-time": _dotnet(enqueued, utc=True),
                **({"x-opt-partition-key": self.partition_key} if self.partition_key else {}),
                "SequenceNumber": sequence,
                "Offset": offset,
                "OffsetString": str(offset),
                "PartitionKey": self.partition_key,
                "EnqueuedTimeUtc": _dotnet(enqueued, utc=False),
            }
            for sequence, offset, enqueued in self.positions()
        ]

    def partition_context(self) -> dict[str, Any]:
        return {
            "FullyQualifiedNamespace": self.namespace,
            "EventHubName": self.hub,
            "ConsumerGroup": self.consumer_group,
            "PartitionId": self.partition,
        }

    def trigger_metadata(self, protos: ModuleType) -> dict[str, Any]:
        positions = self.positions()

        def as_json(value: Any) -> Any:
            return protos.TypedData(json=json.dumps(value, separators=(",", ":")))

        def strings(values: list[str | None]) -> Any:
            kept = [value for value in values if value]
            return protos.TypedData(collection_string=protos.CollectionString(string=kept))

        return {
            "TriggerPartitionContext": as_json(
                {"IsCheckpointingAfterInvocation": True, **self.partition_context()}
            ),
            "PartitionContext": as_json(self.partition_context()),
            "PartitionKeyArray": strings([self.partition_key] * len(self.bodies)),
            "OffsetArray": strings([str(offset) for _, offset, _ in positions]),
            "OffsetStringArray": strings([str(offset) for _, offset, _ in positions]),
            "SequenceNumberArray": protos.TypedData(
                collection_sint64=protos.CollectionSInt64(sint64=[s for s, _, _ in positions])
            ),
            "EnqueuedTimeUtcArray": as_json([_dotnet(t, utc=False) for _, _, t in positions]),
            "PropertiesArray": as_json([self.properties for _ in self.bodies]),
            "SystemPropertiesArray": as_json(self.system_properties()),
        }


def invocation_request(
    protos: ModuleType,
    function_id: str,
    batch: EventHubBatch,
    *,
    arg_name: str = "events",
    invocation_id: str | None = None,
    retry_count: int = 0,
    last_exception: Any = None,
) -> Any:
    """The InvocationRequest for ``batch``. A retry (``retry_count`` > 0) carries the retry
    context the host sends with a function-level retry policy (max_retry_count -1: forever)."""
    request = protos.InvocationRequest(
        invocation_id=invocation_id or str(uuid.uuid4()),
        function_id=function_id,
        input_data=[
            protos.ParameterBinding(
                name=arg_name,
                data=protos.TypedData(
                    collection_bytes=protos.CollectionBytes(bytes=list(batch.bodies))
                ),
            )
        ],
        trigger_metadata=batch.trigger_metadata(protos),
        trace_context=protos.RpcTraceContext(
            trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"
        ),
    )
    if retry_count:
        request.retry_context.CopyFrom(
            protos.RetryContext(
                retry_count=retry_count, max_retry_count=-1, exception=last_exception
            )
        )
    return request
