"""Issue 11, point 4: the local run of docs/deploy.md works with local.settings.sample.json
copied as is. Its APPLICATIONINSIGHTS_CONNECTION_STRING is the one `python -m chargeback store`
prints on its default port, and a batch run by the real Python runtime with exactly those
settings (as `func start` passes Values to the worker: as environment variables) lands in a
running local store.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chargeback.local.store import LocalStore, connection_string
from chargeback.settings import load_settings
from chargeback.tools.cli import build_parser
from chargeback.tools.functions_host import (
    REPO_ROOT,
    EventHubBatch,
    FunctionsHost,
    app_environment,
    protos,
)
from tests.support.messages import v1_message

SAMPLE = REPO_ROOT / "local.settings.sample.json"


def sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE.read_text())["Values"]
    return values


def endpoint_port(value: str) -> int:
    found = re.search(r"IngestionEndpoint=http://127\.0\.0\.1:(\d+)/", value)
    assert found, value
    return int(found.group(1))


def test_the_sample_sends_to_the_local_store_on_its_default_port() -> None:
    default_port = build_parser().parse_args(["store"]).port
    value = sample_values()["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert value == connection_string(default_port)


def test_the_sample_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the Function reads them: from the environment, empty values meaning "not set"."""
    for name, value in sample_values().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.applicationinsights_connection_string == connection_string(8765)
    assert settings.applicationinsights_authentication_string is None
    assert settings.deadletter_connection_string == "UseDevelopmentStorage=true"
    assert settings.prices_file is None
    assert settings.identity_map_file is None
    assert not settings.worker_telemetry_enabled


@contextmanager
def store_on(port: int, folder: Path) -> Iterator[LocalStore]:
    """The local store on ``port``, as `python -m chargeback store` runs it; if something on
    this machine already listens there (a developer's own store), on a free port instead: the
    caller then changes only the port in the sample's connection string."""
    try:
        store = LocalStore(folder / "local.duckdb", port=port).start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        store = LocalStore(folder / "local.duckdb").start()
    try:
        yield store
    finally:
        store.stop()


async def _run(env: dict[str, str], batch: EventHubBatch, log: Path) -> Any:
    async with FunctionsHost(REPO_ROOT, env, log_path=log) as host:
        function = await host.start_function()
        return await host.invoke(function, batch)


def test_a_batch_runs_into_the_local_store_with_the_sample_settings(
    records: list[dict[str, Any]], tmp_path: Path
) -> None:
    values = sample_values()
    chosen = [r for r in records if r["status"] == 200 and r["usage"]][:20]
    batch = EventHubBatch([v1_message(r, f"local-{i}") for i, r in enumerate(chosen)])
    with store_on(
        endpoint_port(values["APPLICATIONINSIGHTS_CONNECTION_STRING"]), tmp_path
    ) as store:
        if store.port != 8765:
            values["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection_string(store.port)
        response = asyncio.run(_run(app_environment(values), batch, tmp_path / "worker.log"))
        with store.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT customDimensions->>'RequestId', cloud_RoleName FROM customEvents"
            ).fetchall()

    assert response.result.status == protos().StatusResult.Success, response.result.exception
    assert sorted(rows) == sorted((f"local-{i}", "chargeback-processor") for i in range(20))
