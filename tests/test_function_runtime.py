"""The Function inside the real Azure Functions Python runtime (azure-functions-runtime 1.3.0),
driven as the Functions host drives it (chargeback/tools/functions_host): the runtime indexes
function_app.py, reports the trigger and retry policy the host reads, and answers each batch
Success only when ingestion accepted its events, Failure with the exception otherwise.

Every test that invokes the Function starts its own worker process: the runtime's registry and
the Function's process-wide processor and settings are new in each.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from chargeback.local.store import LocalStore
from chargeback.tools.functions_host import (
    REPO_ROOT,
    EventHubBatch,
    FunctionsHost,
    app_environment,
    protos,
)
from tests.support.ingestion import FaultyIngestion, serve
from tests.support.messages import v1_message
from tests.support.resource_logs import CALL, GATEWAY, LLM_CAMEL, LLM_PASCAL, message
from tests.support.services import Azurite

RPC = protos()
SUCCESS = RPC.StatusResult.Success
FAILURE = RPC.StatusResult.Failure


def settings(connection_string: str, dead_letters: str, container: str) -> dict[str, str]:
    """The app settings the Function reads, as Azure sets them."""
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "EVENTHUB_NAME": "gateway-messages",
        "EVENTHUB_CONSUMER_GROUP": "chargeback-processor",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string,
        "DeadLetterStorage": dead_letters,
        "CHARGEBACK_DEADLETTER_CONTAINER": container,
    }


#: A dead-letter store nothing listens on: for tests whose batches write none.
NO_DEAD_LETTERS = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def billable(records: list[dict[str, Any]], count: int, prefix: str) -> list[bytes]:
    """``count`` gateway messages of recorded successful calls, each one event."""
    chosen = [r for r in records if r["status"] == 200 and r["usage"]]
    return [v1_message(chosen[i % len(chosen)], f"{prefix}-{i}") for i in range(count)]


def request_ids(envelopes: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["baseData"]["properties"]["RequestId"] for e in envelopes]


# --- Indexing: what the host reads -----------------------------------------------------------


async def _index(tmp: Path) -> tuple[Any, Any]:
    env = app_environment(settings("InstrumentationKey=x", NO_DEAD_LETTERS, "unused"))
    async with FunctionsHost(REPO_ROOT, env, log_path=tmp / "worker.log") as host:
        return await host.init(), await host.metadata()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return asyncio.run(_index(tmp_path_factory.mktemp("index")))


def test_the_runtime_indexes_function_app(indexed: tuple[Any, Any]) -> None:
    init, _ = indexed
    assert init.result.status == SUCCESS, init.result.exception.message
    assert init.worker_metadata.runtime_name == "python"
    assert init.worker_metadata.runtime_version == "3.13"
    assert init.worker_metadata.worker_version == "1.3.0"
    # The capability that makes the host send a batch as collection_bytes (eventhub.py).
    assert init.capabilities["TypedDataCollection"] == "true"


def test_the_host_reads_an_event_hubs_batch_trigger_retried_forever(
    indexed: tuple[Any, Any],
) -> None:
    _, metadata = indexed
    assert metadata.result.status == SUCCESS
    assert not metadata.use_default_metadata_indexing
    (function,) = metadata.function_metadata_results
    assert function.name == "chargeback"
    assert function.function_id == str(uuid.uuid5(uuid.NAMESPACE_OID, "chargeback"))
    assert function.script_file == "function_app.py"
    assert function.language == "python"
    assert dict(function.properties) == {"worker_indexed": "True"}
    binding = function.bindings["events"]
    assert binding.type == "eventHubTrigger"
    assert binding.direction == RPC.BindingInfo.Direction.Value("in")
    assert binding.data_type == RPC.BindingInfo.DataType.Value("binary")
    (raw,) = function.raw_bindings
    assert json.loads(raw) == {
        "direction": "IN",
        "dataType": "BINARY",
        "type": "eventHubTrigger",
        "name": "events",
        "connection": "EventHubConnection",
        "eventHubName": "%EVENTHUB_NAME%",
        "cardinality": "MANY",
        "consumerGroup": "%EVENTHUB_CONSUMER_GROUP%",
    }
    retry = function.retry_options
    assert retry.retry_strategy == RPC.RpcRetryOptions.RetryStrategy.Value("exponential_backoff")
    assert retry.max_retry_count == -1
    assert retry.minimum_interval.ToSeconds() == 5
    assert retry.maximum_interval.ToSeconds() == 15 * 60


async def _init_only(app_dir: Path, tmp: Path) -> Any:
    env = app_environment(settings("InstrumentationKey=x", NO_DEAD_LETTERS, "unused"))
    async with FunctionsHost(app_dir, env, log_path=tmp / "worker.log") as host:
        return await host.init()


def test_a_builtin_generic_annotation_is_refused_by_the_runtime(tmp_path: Path) -> None:
    """function_app.py as it was before issue 11: the runtime's loader accepts a binding
    annotation only if it is a class or a typing generic, so the app indexes no function."""
    source = (REPO_ROOT / "function_app.py").read_text()
    annotation = "typing.List[func.EventHubEvent]"
    assert annotation in source
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(source.replace(annotation, "list[func.EventHubEvent]"))
    init = asyncio.run(_init_only(app, tmp_path))
    assert init.result.status == FAILURE
    assert init.result.exception.message == (
        "FunctionLoadError: cannot load the chargeback function: binding events has invalid "
        "non-type annotation list[azure.functions._eventhub.EventHubEvent]"
    )


# --- Invocation: Success only when ingestion accepted the events -----------------------------


@pytest.fixture
def accept_all(local_store: LocalStore) -> Iterator[tuple[FaultyIngestion, str]]:
    ingestion = FaultyIngestion(local_store)
    with serve(ingestion) as connection_string:
        yield ingestion, connection_string


async def _invoke_twice(env: dict[str, str], batch: EventHubBatch, log: Path) -> list[Any]:
    async with FunctionsHost(REPO_ROOT, env, log_path=log) as host:
        function = await host.start_function()
        first = await host.invoke(function, batch)
        # Event Hubs delivers the batch again after a restart: nothing may be counted twice.
        again = await host.invoke(function, batch)
        return [first, again]


def test_a_batch_succeeds_when_its_events_were_accepted(
    accept_all: tuple[FaultyIngestion, str],
    local_store: LocalStore,
    azurite: Azurite,
    records: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    ingestion, connection_string = accept_all
    bodies = billable(records, 12, "ok")
    cut = b'{"version": 1, "requestId": "cut"'  # cut before it can be identified
    batch = EventHubBatch([*bodies, cut], partition="7", first_sequence=500)
    env = app_environment(settings(connection_string, azurite.connection_string, "rt-dead"))

    responses = asyncio.run(_invoke_twice(env, batch, tmp_path / "worker.log"))

    assert [r.result.status for r in responses] == [SUCCESS, SUCCESS]
    expected = [f"ok-{i}" for i in range(12)]
    assert request_ids(ingestion.accepted) == expected + expected
    with local_store.connect(read_only=True) as con:
        stored = con.execute(
            "SELECT count(DISTINCT customDimensions->>'RequestId') FROM customEvents"
        ).fetchone()
    assert stored == (12,)
    # The partition and position come from the trigger metadata the runtime passed on.
    container = ContainerClient.from_connection_string(azurite.connection_string, "rt-dead")
    (letter,) = container.list_blobs(include=["metadata"])
    assert letter.metadata["partition"] == "7"
    assert letter.metadata["sequence_number"] == "512"
    assert letter.metadata["reason"] == "unidentifiable"
    assert letter.name.startswith("2026/11/20/unidentifiable/7-")


async def _fail_then_retry(
    env: dict[str, str], batch: EventHubBatch, ingestion: FaultyIngestion, log: Path
) -> tuple[Any, Any]:
    async with FunctionsHost(REPO_ROOT, env, log_path=log) as host:
        function = await host.start_function()
        failed = await host.invoke(function, batch)
        # The host runs the batch again (the retry policy), and ingestion is back.
        ingestion.script = lambda _n: "ok"
        retried = await host.invoke(
            function, batch, retry_count=1, last_exception=failed.result.exception
        )
        return failed, retried


def test_a_batch_fails_with_the_exception_when_its_events_were_not_accepted(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    ingestion = FaultyIngestion(None, script=lambda _n: "503")
    batch = EventHubBatch(billable(records, 5, "down"), partition="2")
    with serve(ingestion) as connection_string:
        env = app_environment(settings(connection_string, NO_DEAD_LETTERS, "unused"))
        failed, retried = asyncio.run(
            _fail_then_retry(env, batch, ingestion, tmp_path / "worker.log")
        )

    assert failed.result.status == FAILURE
    assert failed.result.exception.message == (
        "TelemetryNotAccepted: Application Insights did not accept this batch's events; "
        "the batch will be retried"
    )
    assert "chargeback/emit/azure_monitor.py" in failed.result.exception.stack_trace
    assert ingestion.requests[:3] == ["503", "503", "503"]  # every attempt of the sink
    assert retried.result.status == SUCCESS
    assert request_ids(ingestion.accepted) == [f"down-{i}" for i in range(5)]


# --- The second trigger: API Management's resource logs --------------------------------------


async def _resource_logs(env: dict[str, str], batch: EventHubBatch, log: Path) -> tuple[Any, Any]:
    async with FunctionsHost(REPO_ROOT, env, log_path=log) as host:
        function = await host.start_function("chargeback_resource_logs")
        metadata = await host.metadata()
        return metadata, await host.invoke(function, batch)


def test_the_resource_log_trigger_is_indexed_and_bills_an_llm_log(
    accept_all: tuple[FaultyIngestion, str], local_store: LocalStore, tmp_path: Path
) -> None:
    """With its hub configured, the runtime indexes a second trigger on it; a batch of
    resource-log messages through it lands in the store, each half once."""
    ingestion, connection_string = accept_all
    env = app_environment(
        {
            **settings(connection_string, NO_DEAD_LETTERS, "unused"),
            "RESOURCE_LOGS_EVENTHUB_NAME": "apim-resource-logs",
            "RESOURCE_LOGS_EVENTHUB_CONSUMER_GROUP": "chargeback-processor",
        }
    )
    batch = EventHubBatch([message(GATEWAY, LLM_CAMEL), message(LLM_PASCAL)], partition="1")
    metadata, response = asyncio.run(_resource_logs(env, batch, tmp_path / "worker.log"))

    names = sorted(f.name for f in metadata.function_metadata_results)
    assert names == ["chargeback", "chargeback_resource_logs"]
    (logs,) = (f for f in metadata.function_metadata_results if f.name != "chargeback")
    assert json.loads(logs.raw_bindings[0]) == {
        "direction": "IN",
        "dataType": "BINARY",
        "type": "eventHubTrigger",
        "name": "events",
        "connection": "ResourceLogsEventHubConnection",
        "eventHubName": "%RESOURCE_LOGS_EVENTHUB_NAME%",
        "cardinality": "MANY",
        "consumerGroup": "%RESOURCE_LOGS_EVENTHUB_CONSUMER_GROUP%",
    }
    assert logs.retry_options.max_retry_count == -1
    assert response.result.status == SUCCESS, response.result.exception.message
    assert sorted(request_ids(ingestion.accepted)) == sorted(
        [CALL, CALL, "9d1c0b2a-0000-4000-8000-000000000002"]
    )
    with local_store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT customDimensions->>'LogCategory', customDimensions->>'TokenSource',"
            " customMeasurements->>'TotalTokens' FROM customEvents ORDER BY 1, 3"
        ).fetchall()
    assert rows == [
        ("GatewayLlmLogs", "gateway", "1734.0"),
        ("GatewayLlmLogs", "gateway", "49.0"),
        ("GatewayLogs", None, "0.0"),
    ]
