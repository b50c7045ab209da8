"""The Python language worker process, as the Functions host starts it, around the real
azure-functions-runtime: ``python worker.py PROTOS_DIR``.

In Azure the host starts the worker (azure-functions-python-worker's ``proxy_worker``), which
connects back over gRPC and hands every StreamingMessage it receives to the runtime it loaded
(azure_functions_runtime for a v2 app) as a request object whose ``.request`` is the message and
whose ``.properties`` hold ``protos`` and ``host``. This script does what that dispatcher does
(workers/proxy_worker/dispatcher.py in Azure/azure-functions-python-worker):

- each incoming message becomes its own task on one asyncio loop, so invocations overlap;
- on WorkerInitRequest it puts the app folder first on ``sys.path``, moves into it, imports the
  runtime, calls ``start_threadpool_executor()`` (PYTHON_THREADPOOL_THREAD_COUNT) and then
  ``worker_init_request``, which indexes ``function_app.py``;
- FunctionsMetadataRequest, FunctionLoadRequest and InvocationRequest go to the runtime's
  handlers, with ``properties`` left out as the dispatcher leaves them out.

Only the transport differs: length-prefixed frames on stdin/stdout instead of a gRPC stream
(the payloads are the same serialized StreamingMessages). The Function's own output goes to
stderr. A few control frames let a test look inside: count calls of named functions (with
``sys.monitoring``, which observes without replacing anything) and stop.

Frames: one byte kind, four bytes big-endian length, payload. ``M`` a StreamingMessage; ``C``
(JSON: names to count) and ``S`` (statistics) and ``X`` (stop), each answered with the same kind;
``E`` reports a fault of this script.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType
from typing import IO, Any

HEADER = struct.Struct(">cI")
#: sys.monitoring tool id for the call counters (ids 0-5 are free for tools like this one).
TOOL = 4


@dataclass
class WorkerRequest:
    """What the proxy worker passes to the runtime's handlers."""

    name: str
    request: Any
    properties: dict[str, Any] | None = None


class CallCounter:
    """Counts calls of given functions on any thread, and how many run at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[CodeType, str] = {}
        self.calls: dict[str, int] = {}
        self.threads: dict[str, set[str]] = {}
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def watch(self, targets: dict[str, CodeType]) -> None:
        events = sys.monitoring.events
        if sys.monitoring.get_tool(TOOL) is None:
            sys.monitoring.use_tool_id(TOOL, "functions-host-harness")
            sys.monitoring.register_callback(TOOL, events.PY_START, self._start)
            sys.monitoring.register_callback(TOOL, events.PY_RETURN, self._end)
            sys.monitoring.register_callback(TOOL, events.PY_UNWIND, self._unwind)
            # Unwinding is not a local event: it is watched everywhere, and filtered here.
            sys.monitoring.set_events(TOOL, events.PY_UNWIND)
        for name, code in targets.items():
            self._names[code] = name
            self.calls.setdefault(name, 0)
            self.threads.setdefault(name, set())
            self.running.setdefault(name, 0)
            self.most.setdefault(name, 0)
            sys.monitoring.set_local_events(TOOL, code, events.PY_START | events.PY_RETURN)

    def _start(self, code: CodeType, offset: int) -> Any:
        name = self._names.get(code)
        if name is not None:
            with self._lock:
                self.calls[name] += 1
                self.threads[name].add(threading.current_thread().name)
                self.running[name] += 1
                self.most[name] = max(self.most[name], self.running[name])
        return None

    def _end(self, code: CodeType, offset: int, value: object) -> Any:
        name = self._names.get(code)
        if name is not None:
            with self._lock:
                self.running[name] -= 1
        return None

    def _unwind(self, code: CodeType, offset: int, exception: BaseException) -> Any:
        return self._end(code, offset, exception)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "threads": {name: sorted(names) for name, names in self.threads.items()},
                "most_at_once": dict(self.most),
            }


def code_of(target: str) -> CodeType:
    """``package.module:Class.method`` -> that function's code object."""
    module_name, _, qualname = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = getattr(value, part)
    # The v2 decorators leave a FunctionBuilder under the function's name; count its function.
    built = getattr(value, "_function", None)
    if built is not None and hasattr(built, "get_user_function"):
        value = built.get_user_function()
    code = getattr(value, "__code__", None)
    if not isinstance(code, CodeType):
        raise TypeError(f"{target} is not a Python function")
    return code


class Worker:
    def __init__(self, protos: ModuleType, channel_in: IO[bytes], channel_out: IO[bytes]):
        self.protos = protos
        self._in = channel_in
        self._out = channel_out
        self._runtime: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = CallCounter()
        self._stopped: asyncio.Event | None = None

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        reader = threading.Thread(target=self._read, args=(loop,), name="host-channel")
        reader.start()
        await self._stopped.wait()
        reader.join()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        # As the proxy worker's gRPC thread: each message is scheduled as its own task.
        while True:
            header = self._in.read(HEADER.size)
            if len(header) < HEADER.size:
                loop.call_soon_threadsafe(self._stop)
                return
            kind, length = HEADER.unpack(header)
            payload = self._in.read(length)
            loop.call_soon_threadsafe(self._spawn, kind, payload)

    def _spawn(self, kind: bytes, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._dispatch(kind, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def _send(self, kind: bytes, payload: bytes) -> None:
        self._out.write(HEADER.pack(kind, len(payload)) + payload)
        self._out.flush()

    async def _dispatch(self, kind: bytes, payload: bytes) -> None:
        try:
            await self._answer(kind, payload)
        except Exception:
            # Not the runtime's answer to the host (it answers failures itself): a fault of this
            # harness, reported so that the test fails at once instead of waiting.
            text = traceback.format_exc()
            sys.stderr.write(text)
            self._send(b"E", text.encode())

    async def _answer(self, kind: bytes, payload: bytes) -> None:
        if kind == b"M":
            message = self.protos.StreamingMessage.FromString(payload)
            response = await self._handle(message)
            self._send(b"M", response.SerializeToString())
        elif kind == b"C":
            names: list[str] = json.loads(payload)
            self._counter.watch({name: code_of(name) for name in names})
            self._send(b"C", b"{}")
        elif kind == b"S":
            stats = self._counter.report()
            pool = None if self._runtime is None else self._runtime.get_threadpool_executor()
            stats["pool_max_workers"] = None if pool is None else pool._max_workers
            self._send(b"S", json.dumps(stats).encode())
        elif kind == b"X":
            # As the proxy worker at shutdown; the process ends when the host closes stdin.
            if self._runtime is not None:
                self._runtime.stop_threadpool_executor()
            self._send(b"X", b"{}")

    async def _handle(self, message: Any) -> Any:
        protos = self.protos
        content = message.WhichOneof("content")
        if content == "worker_init_request":
            self._runtime = self._load_runtime(message.worker_init_request.function_app_directory)
            self._runtime.start_threadpool_executor()
            init = WorkerRequest(
                "WorkerInitRequest", message, {"protos": protos, "host": "127.0.0.1"}
            )
            response = await self._runtime.worker_init_request(init)
            return protos.StreamingMessage(
                request_id=message.request_id, worker_init_response=response
            )
        handlers: dict[str, tuple[str, Callable[..., Any]]] = {
            "functions_metadata_request": (
                "function_metadata_response",
                self._runtime.functions_metadata_request,
            ),
            "function_load_request": (
                "function_load_response",
                self._runtime.function_load_request,
            ),
            "invocation_request": ("invocation_response", self._runtime.invocation_request),
        }
        field, handler = handlers[str(content)]
        response = await handler(WorkerRequest(str(content), message))
        return protos.StreamingMessage(request_id=message.request_id, **{field: response})

    @staticmethod
    def _load_runtime(app_directory: str) -> Any:
        # The host starts the worker in the app folder, and the app's modules come first.
        sys.path.insert(0, app_directory)
        os.chdir(app_directory)
        return importlib.import_module("azure_functions_runtime")


def main() -> None:
    # This script's folder is not the app's: take it off the path before anything is imported.
    here = Path(sys.path.pop(0))
    spec = importlib.util.spec_from_file_location("functions_host_protos", here / "protos.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no protos.py beside {__file__}")
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    protos = loader.import_protos(sys.argv[1])
    # The frames own the real stdout; whatever the Function prints goes to stderr.
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # The proxy worker sends the root logger to the host at INFO; here it goes to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(Worker(protos, sys.stdin.buffer, channel_out).serve())


if __name__ == "__main__":
    main()
