"""Cold start through the real runtime, for ``python -m chargeback bench`` (issue 11, point 5).

One measurement is one fresh worker process, as the host starts one on a new instance: the
runtime indexes ``function_app.py`` (WorkerInitRequest), the host reads the metadata and loads
the function, and the first invocation runs a batch to the end: the Function's processor is
built from its app settings, the events are exported to a local store (chargeback's own
ingestion endpoint, on loopback) and accepted. Beside it, the same machine's baseline: a fresh
interpreter that only imports ``azure.functions``. Every figure is wall time from spawning the
process; nothing is asserted here (tests never time anything).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chargeback.local.store import LocalStore

from .eventhub import EventHubBatch
from .host import REPO_ROOT, FunctionsHost, WorkerFault, app_environment

__all__ = ["ColdStart", "measure_cold_start"]

#: Dead letters at an address nothing listens on: a first batch of good messages writes none.
_NO_DEAD_LETTERS = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


@dataclass(frozen=True)
class ColdStart:
    """Seconds from spawning a process."""

    #: Until the runtime answered WorkerInitRequest: the interpreter, the runtime's import and
    #: the indexing of function_app.py (which imports chargeback).
    init: float
    #: Until the first invocation answered Success: the above, then metadata and load, then
    #: the first batch (processor built, events exported and accepted).
    first_invocation: float
    #: Until a fresh ``python -c "import azure.functions"`` exited.
    import_azure_functions: float

    @property
    def ratio(self) -> float:
        """Cold start over the bare import, both measured in the same run."""
        return self.first_invocation / self.import_azure_functions


async def _through_runtime(
    app_dir: Path, env: Mapping[str, str], batch: EventHubBatch, log: Path, python: str
) -> tuple[float, float]:
    host = FunctionsHost(app_dir, env, log_path=log, python=python)
    async with host:
        init = await host.init()
        init_seconds = time.perf_counter() - host.started_at
        if init.result.status != host.protos.StatusResult.Success:
            raise WorkerFault(f"worker init failed: {init.result.exception.message}")
        function = await host.load_function()
        response = await host.invoke(function, batch)
        first_seconds = time.perf_counter() - host.started_at
        if response.result.status != host.protos.StatusResult.Success:
            raise WorkerFault(f"the first batch failed: {response.result.exception.message}")
    return init_seconds, first_seconds


def _bare_import(python: str, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", "import azure.functions"], check=True, env=dict(env))
    return time.perf_counter() - started


def measure_cold_start(
    bodies: Sequence[bytes],
    *,
    app_dir: Path = REPO_ROOT,
    python: str = sys.executable,
    settings: Mapping[str, str] | None = None,
) -> ColdStart:
    """One cold start of the Function in the real runtime, first batch ``bodies`` (100 in the
    bench), and the bare ``import azure.functions`` next to it."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as folder:
        with LocalStore(Path(folder) / "cold.duckdb") as store:
            env = app_environment(
                {
                    "APPLICATIONINSIGHTS_CONNECTION_STRING": store.connection_string,
                    "DeadLetterStorage": _NO_DEAD_LETTERS,
                    **(settings or {}),
                }
            )
            init, first = asyncio.run(
                _through_runtime(
                    app_dir, env, EventHubBatch(bodies), Path(folder) / "worker.log", python
                )
            )
        bare = _bare_import(python, env)
    return ColdStart(init=init, first_invocation=first, import_azure_functions=bare)
