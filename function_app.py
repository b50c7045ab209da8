"""The Azure Function: an Event Hubs trigger that hands each batch to the chargeback package.

No logic lives here: declare the trigger, turn events into bytes plus metadata, call the package.
"""

import typing

import azure.functions as func

from chargeback import RawMessage, partition_id, process_batch
from chargeback.runtime import warm_up

app = func.FunctionApp()
# The tokenizer loads while no batch is held, so its loading peak never adds to a batch's.
warm_up()


@app.function_name("chargeback")
@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    connection="EventHubConnection",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
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
# typing.List, not list[...]: the runtime's loader accepts a binding annotation only if it is a
# class or a typing generic (azure_functions_runtime/functions.py, is_generic_type).
def chargeback(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
    partition = partition_id(events[0].metadata) if events else None
    process_batch(
        RawMessage(
            body=event.get_body(),
            partition=partition,
            sequence_number=event.sequence_number,
            offset=None if event.offset is None else str(event.offset),
            enqueued_time=event.enqueued_time,
        )
        for event in events
    )
