"""What the Functions host hands the worker for an Event Hubs batch (cardinality many), built
with azure.functions' own converter so the Function sees real `EventHubEvent` objects."""

from __future__ import annotations

import json
from types import SimpleNamespace

import azure.functions as func
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter


def host_batch(
    bodies: list[bytes], *, partition: str = "3", first_sequence: int = 100
) -> list[func.EventHubEvent]:
    system_properties = [
        {
            "SequenceNumber": first_sequence + i,
            "Offset": 4096 * (first_sequence + i),
            "EnqueuedTimeUtc": "2026-11-20T10:00:01.1234567Z",
            "PartitionKey": None,
        }
        for i in range(len(bodies))
    ]
    trigger_metadata = {
        "SystemPropertiesArray": meta.Datum(json.dumps(system_properties), "json"),
        "PartitionContext": meta.Datum(
            json.dumps(
                {"ConsumerGroup": "chargeback", "EventHubName": "gateway", "PartitionId": partition}
            ),
            "json",
        ),
    }
    data = meta.Datum(SimpleNamespace(bytes=bodies), "collection_bytes")
    events = EventHubTriggerConverter.decode(data, trigger_metadata=trigger_metadata)
    assert isinstance(events, list)
    return events
