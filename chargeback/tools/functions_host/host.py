"""The Functions host's side: start a worker process around the real Python runtime and drive
it with the messages the host sends, in the host's order.

Each `FunctionsHost` is a fresh process, which is how the tests run the Function fresh: the
runtime's registry, ``function_app`` and the process-wide processor and settings of
``chargeback.runtime`` live only as long as the process. Nothing is reset in place.

    env = app_environment({"APPLICATIONINSIGHTS_CONNECTION_STRING": ..., ...}, threads=8)
    async with FunctionsHost(REPO_ROOT, env, log_path=tmp / "worker.log") as host:
        function = await host.start_function()          # init (indexing), metadata, load
        response = await host.invoke(function, EventHubBatch(bodies, partition="3"))

Every call is a coroutine on the caller's loop; invocations sent together run together (the
worker runs each on the runtime's thread pool).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

from .eventhub import EventHubBatch, invocation_request
from .protos import compiled_dir, protos
from .worker import HEADER

__all__ = ["REPO_ROOT", "FunctionsHost", "LoadedFunction", "WorkerFault", "app_environment"]

REPO_ROOT = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("worker.py")
#: Seconds to wait for any one answer of the worker before calling it stuck.
ANSWER_TIMEOUT = 600

#: What the worker process inherits from this one; everything else comes from the app settings.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYENV_VERSION")
#: The exporter otherwise reports its own usage to Microsoft endpoints.
_QUIET_EXPORTER = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}


def app_environment(settings: Mapping[str, str], *, threads: int | None = None) -> dict[str, str]:
    """The worker's environment as the host builds it: the app settings as variables (plus
    PATH and the like, and the repository on PYTHONPATH so ``chargeback`` imports from an app
    folder elsewhere). ``threads`` sets PYTHON_THREADPOOL_THREAD_COUNT."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(_QUIET_EXPORTER)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(settings)
    if threads is not None:
        env["PYTHON_THREADPOOL_THREAD_COUNT"] = str(threads)
    return env


@dataclass(frozen=True)
class LoadedFunction:
    """A function the worker indexed and the host loaded."""

    metadata: Any
    load: Any

    @property
    def function_id(self) -> str:
        return str(self.metadata.function_id)


class WorkerFault(RuntimeError):
    """The worker process failed (not the Function: the runtime reports that in a response)."""


class FunctionsHost:
    """One worker process, driven as the host drives it."""

    def __init__(
        self,
        app_dir: Path,
        env: Mapping[str, str],
        *,
        log_path: Path,
        python: str = sys.executable,
    ) -> None:
        self.app_dir = Path(app_dir)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.python = python
        self.protos: ModuleType = protos()
        #: When the process was started and when each response arrived (time.perf_counter()).
        self.started_at = 0.0
        self.arrivals: dict[str, float] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def __aenter__(self) -> FunctionsHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the process ------------------------------------------------------------------------

    async def start(self) -> None:
        folder = compiled_dir()
        self._log = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self._process = await asyncio.create_subprocess_exec(
            self.python,
            str(WORKER),
            str(folder),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=self.env,
            cwd=self.app_dir,
        )
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            try:
                await asyncio.wait_for(self._control(b"X", b"{}"), timeout=30)
                if process.stdin is not None:
                    process.stdin.close()
                await asyncio.wait_for(process.wait(), timeout=30)
            except (TimeoutError, WorkerFault, ConnectionError):
                process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
        if self._log is not None:
            self._log.close()
        self._process = None

    def log(self) -> str:
        """What the worker wrote to stderr (its log, the Function's output)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while True:
                kind, length = HEADER.unpack(await stdout.readexactly(HEADER.size))
                payload = await stdout.readexactly(length)
                if kind == b"E":
                    self._fail_all(WorkerFault(payload.decode(errors="replace")))
                elif kind == b"M":
                    self._route(self.protos.StreamingMessage.FromString(payload))
                else:
                    self._resolve(("control", kind.decode()), json.loads(payload))
        except asyncio.IncompleteReadError:
            await self._process.wait()
            self._fail_all(
                WorkerFault(
                    f"the worker exited ({self._process.returncode});"
                    f" its log:\n{self.log()[-4000:]}"
                )
            )

    def _route(self, message: Any) -> None:
        content = message.WhichOneof("content")
        response = getattr(message, content)
        keys = {
            "worker_init_response": "",
            "function_metadata_response": "",
            "function_load_response": getattr(response, "function_id", ""),
            "invocation_response": getattr(response, "invocation_id", ""),
        }
        if content not in keys:
            self._fail_all(WorkerFault(f"unexpected message from the worker: {content}"))
            return
        key = keys[content]
        self.arrivals[f"{content}:{key}"] = time.perf_counter()
        self._resolve((content, key), response)

    def _resolve(self, key: tuple[str, str], value: Any) -> None:
        future = self._waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    def _fail_all(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    def _expect(self, key: tuple[str, str]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    def _write(self, kind: bytes, payload: bytes) -> None:
        if self._process is None or self._process.stdin is None:
            raise WorkerFault("the worker is not running")
        self._process.stdin.write(HEADER.pack(kind, len(payload)) + payload)

    async def _send(self, message: Any, expect: tuple[str, str]) -> Any:
        answer = self._expect(expect)
        self._write(b"M", message.SerializeToString())
        return await self._within(answer)

    async def _control(self, kind: bytes, payload: bytes) -> Any:
        answer = self._expect(("control", kind.decode()))
        self._write(kind, payload)
        return await self._within(answer)

    async def _within(self, answer: asyncio.Future[Any]) -> Any:
        # Not a budget for the Function (a batch may legitimately take minutes of retries
        # inside the sink): only so that a worker that never answers fails the test.
        try:
            return await asyncio.wait_for(answer, timeout=ANSWER_TIMEOUT)
        except TimeoutError:
            raise WorkerFault(
                f"no answer within {ANSWER_TIMEOUT} s; the worker's log:\n{self.log()[-4000:]}"
            ) from None

    # --- what the host sends ------------------------------------------------------------------

    async def init(self) -> Any:
        """WorkerInitRequest: the runtime indexes ``function_app.py`` in the app folder."""
        p = self.protos
        message = p.StreamingMessage(
            request_id="init",
            worker_init_request=p.WorkerInitRequest(
                host_version="4.1040.0",
                # What the host tells every worker; the runtime reads FunctionDataCache only.
                capabilities={},
                worker_directory=str(WORKER.parent),
                function_app_directory=str(self.app_dir),
            ),
        )
        return await self._send(message, ("worker_init_response", ""))

    async def metadata(self) -> Any:
        """FunctionsMetadataRequest: what the worker indexed, as the host reads it."""
        p = self.protos
        message = p.StreamingMessage(
            request_id="metadata",
            functions_metadata_request=p.FunctionsMetadataRequest(
                function_app_directory=str(self.app_dir)
            ),
        )
        return await self._send(message, ("function_metadata_response", ""))

    async def load(self, metadata: Any) -> Any:
        """FunctionLoadRequest for one indexed function."""
        p = self.protos
        message = p.StreamingMessage(
            request_id=f"load-{metadata.function_id}",
            function_load_request=p.FunctionLoadRequest(
                function_id=metadata.function_id, metadata=metadata
            ),
        )
        return await self._send(message, ("function_load_response", metadata.function_id))

    async def start_function(self, name: str = "chargeback") -> LoadedFunction:
        """Init, metadata, load, as the host does at start; raises if any step failed."""
        init = await self.init()
        if init.result.status != self.protos.StatusResult.Success:
            raise WorkerFault(f"worker init failed: {init.result.exception.message}")
        return await self.load_function(name)

    async def load_function(self, name: str = "chargeback") -> LoadedFunction:
        """After init: metadata, then load ``name``; raises if either failed."""
        success = self.protos.StatusResult.Success
        metadata = await self.metadata()
        found = [m for m in metadata.function_metadata_results if m.name == name]
        if metadata.result.status != success or len(found) != 1:
            raise WorkerFault(f"no function {name!r} indexed: {metadata}")
        load = await self.load(found[0])
        if load.result.status != success:
            raise WorkerFault(f"load failed: {load.result.exception.message}")
        return LoadedFunction(found[0], load)

    async def invoke(
        self,
        function: LoadedFunction,
        batch: EventHubBatch,
        *,
        retry_count: int = 0,
        last_exception: Any = None,
    ) -> Any:
        """InvocationRequest for an Event Hubs batch; returns the InvocationResponse."""
        request = invocation_request(
            self.protos,
            function.function_id,
            batch,
            retry_count=retry_count,
            last_exception=last_exception,
        )
        message = self.protos.StreamingMessage(
            request_id=request.invocation_id, invocation_request=request
        )
        return await self._send(message, ("invocation_response", request.invocation_id))

    # --- looking inside the worker ------------------------------------------------------------

    async def count_calls(self, targets: Sequence[str]) -> None:
        """From now on, count calls of ``module:qualname`` functions in the worker (which
        imports the modules if the app did not)."""
        await self._control(b"C", json.dumps(list(targets)).encode())

    async def stats(self) -> dict[str, Any]:
        """Calls counted, the threads they ran on, how many ran at once, the pool's size."""
        found: dict[str, Any] = await self._control(b"S", b"{}")
        return found
