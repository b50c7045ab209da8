"""The Azure Function: Event Hubs triggers that hand each batch to the chargeback package.

No logic lives here: declare the triggers, turn events into bytes plus metadata, call the
package. One trigger reads the gateway messages API Management's policy sends; a second, when
its hub is configured, reads API Management's resource logs (its LLM logs: the tokens of
streamed calls, without buffering the stream). Both take the same path: the package tells the
shapes apart.
"""

import os
import typing
from collections.abc import Iterator

import azure.functions as func

from chargeback import RawMessage, partition_id, process_batch
from chargeback.runtime import warm_up

app = func.FunctionApp()
# The tokenizer loads while no batch is held, so its loading peak never adds to a batch's.
warm_up()


def _messages(events: typing.Sequence[func.EventHubEvent]) -> Iterator[RawMessage]:
    partition = partition_id(events[0].metadata) if events else None
    for event in events:
        yield RawMessage(
            body=event.get_body(),
            partition=partition,
            sequence_number=event.sequence_number,
            offset=None if event.offset is None else str(event.offset),
            enqueued_time=event.enqueued_time,
        )


def _trigger(name: str, hub: str, connection: str, consumer_group: str) -> None:
    @app.function_name(name)
    @app.event_hub_message_trigger(
        arg_name="events",
        event_hub_name=hub,
        connection=connection,
        consumer_group=consumer_group,
        cardinality=func.Cardinality.MANY,
        data_type=func.DataType.BINARY,
    )
    # A failed batch (telemetry or dead letters not accepted) is run again before the checkpoint
    # moves; -1 retries until it succeeds, since dropping billing data is never the right answer.
    @app.retry(
        strategy="exponential_backoff",
        max_retry_count="-1",
        minimum_interval="00:00:05",
        maximum_interval="00:15:00",
    )
    # typing.List, not list[...]: the runtime's loader accepts a binding annotation only if it
    # is a class or a typing generic (azure_functions_runtime/functions.py, is_generic_type).
    def handle(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
        process_batch(_messages(events))


_trigger("chargeback", "%EVENTHUB_NAME%", "EventHubConnection", "%EVENTHUB_CONSUMER_GROUP%")
# Only when a hub is configured: a trigger whose hub setting does not resolve would not start.
if os.environ.get("RESOURCE_LOGS_EVENTHUB_NAME"):
    _trigger(
        "chargeback_resource_logs",
        "%RESOURCE_LOGS_EVENTHUB_NAME%",
        "ResourceLogsEventHubConnection",
        "%RESOURCE_LOGS_EVENTHUB_CONSUMER_GROUP%",
    )
