"""Measuring the pipeline against the least-work baseline, cold start and memory."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import tiktoken

    from chargeback.receive import RawMessage

from chargeback.tools.bench.mix import BATCH_SIZE

# --- Measuring ------------------------------------------------------------------------------


def as_raw(bodies: Sequence[bytes]) -> list[RawMessage]:
    from chargeback.receive import RawMessage

    return [
        RawMessage(body=body, partition="0", sequence_number=number)
        for number, body in enumerate(bodies)
    ]


def split_batches(messages: list[RawMessage]) -> list[list[RawMessage]]:
    return [messages[i : i + BATCH_SIZE] for i in range(0, len(messages), BATCH_SIZE)]


@dataclass
class _PipelineRun:
    seconds: float
    outcomes: Counter[str]
    sources: Counter[str]
    events: int
    all_seconds: list[float] = field(default_factory=list)
    all_baseline: list[float] = field(default_factory=list)


def measure(
    batches: list[list[RawMessage]], work: list[_Work], repeat: int
) -> tuple[float, float, list[float], _PipelineRun]:
    """The fastest pipeline and baseline times of ``repeat`` interleaved runs, the ratio of
    each repetition, and the last pipeline run (with every time of both in it)."""
    pipeline_times, baseline_times, ratios = [], [], []
    last: _PipelineRun | None = None
    for _ in range(max(1, repeat)):
        last = run_pipeline(batches)
        base = run_baseline(work)
        pipeline_times.append(last.seconds)
        baseline_times.append(base)
        ratios.append(last.seconds / base)
    assert last is not None
    last.all_seconds, last.all_baseline = pipeline_times, baseline_times
    return min(pipeline_times), min(baseline_times), ratios, last


def policy_copy(body: bytes) -> tuple[bool, bool]:
    """Whether a message carries the policy's copy of a readable usage, and of the model."""
    from chargeback.tokens import usage_from_api

    fields = orjson.loads(body)
    usage = usage_from_api(fields.get("usage")) if isinstance(fields.get("usage"), dict) else None
    return usage is not None, bool(fields.get("model"))


def run_pipeline(batches: list[list[RawMessage]]) -> _PipelineRun:
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings

    sink, letters = MemorySink(), MemoryDeadLetters()
    processor = Processor(load_settings(), sink, letters)
    outcomes: Counter[str] = Counter()
    gc.collect()
    start = time.perf_counter()
    for batch in batches:
        report = processor.process_batch(batch)
        outcomes.update(o.kind for o in report.outcomes)
    seconds = time.perf_counter() - start
    sources = Counter(e.dimensions.get("TokenSource", "") for e in sink.events)
    return _PipelineRun(seconds, outcomes, sources, len(sink.events))


@dataclass
class _Work:
    """What the baseline does for one message, prepared before timing."""

    body: bytes
    stream: bool
    #: The usable prefix of a cut body, closed, as a prefix-aware decoder would read it.
    request_text: str | None = None
    response_text: str | None = None
    texts: list[tuple[tiktoken.Encoding, str]] = field(default_factory=list)
    #: A stream in the usual layout, when decoding it in one call, as the pipeline does, is the
    #: faster technique for it (`_faster_stream_decode`); None: line by line.
    layout: _Layout | None = None


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a stream's events of one ``data:`` line each (a blank line after each, LF line
    ends) can be joined into one JSON array: the pipeline's fastest decode, so the baseline's."""

    #: ``event:`` lines to remove first (Responses streams).
    events: bool
    #: The end of the complete events, ``[DONE]`` left out, in the text without ``event:`` lines.
    end: int
    #: Where the text after them (a line a cut left unfinished) starts; read line by line.
    rest: int


def _stream_layout(body: str) -> _Layout | None:
    """The usual layout of a stream, as `chargeback.bodies.exchange` recognises it; None when the
    stream must be read line by line."""
    if "\r" in body:
        return None
    events = "event:" in body
    text = _EVENT_LINE.sub("", "\n" + body)[1:] if events else body
    end = text.rfind("\n\n") + 2
    if end < 2:
        return None
    rest = end
    last = text.rfind("\n\n", 0, end - 2) + 2
    if text.startswith("data:", last) and text[last + 5 : end].strip() == "[DONE]":
        end, rest = last, len(text)  # nothing after [DONE] is read
    head = text[:end]
    if not head.startswith("data:"):
        return None
    try:
        chunks = orjson.loads("[" + head[5:-2].replace("\n\ndata:", ",") + "]")
    except orjson.JSONDecodeError:
        return None
    if head.count("\n") != 2 * len(chunks):
        return None
    return _Layout(events, end, rest)


_EVENT_LINE = re.compile(r"\nevent:[^\n]*")


def _faster_stream_decode(body: str) -> _Layout | None:
    """The stream's layout when decoding it joined is the faster technique for this stream,
    else None (line by line). Joining wins on streams of ``data:`` lines alone; removing the
    ``event:`` lines of a Responses stream can cost more than it saves."""
    layout = _stream_layout(body)
    if layout is None:
        return None
    joined = _fastest(lambda: _decode_stream(body, layout, orjson.loads, _EVENT_LINE.sub))
    by_line = _fastest(lambda: _decode_stream(body, None, orjson.loads, _EVENT_LINE.sub))
    return layout if joined <= by_line else None


def _fastest(work: Callable[[], object], runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _decode_stream(
    response: str, layout: _Layout | None, loads: Callable[[str], Any], sub: Callable[..., str]
) -> None:
    """The baseline's decoding of a stream: joined (``layout``) or each ``data:`` line."""
    if layout is not None:
        # The events joined into one JSON array, decoded in one call.
        if layout.events:
            response = sub("", "\n" + response)[1:]
        loads("[" + response[5 : layout.end - 2].replace("\n\ndata:", ",") + "]")
        response = response[layout.rest :]
    for line in response.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload != "[DONE]":
                try:  # noqa: SIM105 - a with-block costs more in this loop
                    loads(payload)
                except orjson.JSONDecodeError:
                    pass  # the line a cut left unfinished


class _Recorder:
    """Notes every text the estimator hands to tiktoken while the pipeline runs once."""

    _methods = ("encode_ordinary", "encode", "encode_ordinary_batch", "encode_batch")

    def __init__(self) -> None:
        self.texts: list[tuple[tiktoken.Encoding, str]] = []
        self._depth = 0
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> _Recorder:
        import tiktoken

        for name in self._methods:
            original = getattr(tiktoken.Encoding, name)
            self._saved[name] = original
            setattr(tiktoken.Encoding, name, self._wrap(original, batch=name.endswith("batch")))
        return self

    def __exit__(self, *exc: object) -> None:
        import tiktoken

        for name, original in self._saved.items():
            setattr(tiktoken.Encoding, name, original)

    def _wrap(self, original: Any, *, batch: bool) -> Any:
        recorder = self

        def wrapper(encoding: tiktoken.Encoding, text: Any, *args: Any, **kwargs: Any) -> Any:
            if recorder._depth == 0:
                for item in text if batch else [text]:
                    recorder.texts.append((encoding, item))
            recorder._depth += 1
            try:
                return original(encoding, text, *args, **kwargs)
            finally:
                recorder._depth -= 1

        return wrapper


def prepare_baseline(messages: list[RawMessage]) -> list[_Work]:
    """Per message: the prefix of any cut body, and the texts the pipeline counted for it."""
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings

    processor = Processor(load_settings(), MemorySink(), MemoryDeadLetters())
    work = []
    for raw in messages:
        with _Recorder() as recorder:
            processor.process_batch([raw])
        fields = orjson.loads(raw.body)
        content_type = str(fields.get("responseContentType") or "")
        item = _Work(raw.body, "event-stream" in content_type, texts=recorder.texts)
        request, response = fields.get("requestBody"), fields.get("responseBody")
        if request and not _decodes(request):
            item.request_text = _closed(request)
        if response and not item.stream and not _decodes(response):
            item.response_text = _closed(response)
        if response and item.stream:
            item.layout = _faster_stream_decode(response)
        work.append(item)
    return work


def _closed(text: str) -> str | None:
    # What a decoder that reads prefixes natively would decode once: the usable prefix, closed.
    from chargeback.gateway.jsontext import loads_prefix

    try:
        return orjson.dumps(loads_prefix(text)[0]).decode()
    except (ValueError, RecursionError):
        return None


def _decodes(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def run_baseline(work: list[_Work]) -> float:
    loads, sub, decode_stream = orjson.loads, _EVENT_LINE.sub, _decode_stream
    gc.collect()
    start = time.perf_counter()
    for item in work:
        fields = loads(item.body)
        request = fields.get("requestBody")
        if request:
            loads(item.request_text or request)
        response = fields.get("responseBody")
        if response:
            if item.stream:
                decode_stream(response, item.layout, loads, sub)
            else:
                loads(item.response_text or response)
        for encoding, text in item.texts:
            encoding.encode_ordinary(text)
    return time.perf_counter() - start


# --- Fresh processes ------------------------------------------------------------------------


def _project_root() -> Path:
    return Path(__file__).resolve().parents[3]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(_project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_COLD = (
    "import time; _t0 = time.perf_counter()\n"
    "import function_app\n"
    "_t1 = time.perf_counter()\n"
    "from chargeback.tools.bench import cold_start_child\n"
    "cold_start_child(__import__('sys').argv[1], _t1 - _t0, __import__('sys').argv[2])\n"
)
#: The Function's sinks in the cold-start child: an Application Insights connection string
#: whose ingestion endpoint nothing listens on (never flushed to), and a dead-letter container
#: on the Azurite development account at a port nothing listens on (the first batch writes no
#: dead letter); neither is contacted.
_COLD_ENV = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/"
    ),
    "DeadLetterStorage": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    ),
    # The exporter's own telemetry about itself would call Microsoft endpoints.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}


def quiet() -> None:
    # As the CLI does: outcomes are counted here, the processor's own log stays quiet.
    logging.getLogger("chargeback").addHandler(logging.NullHandler())


class _Unsent:
    """Stands in for the Function's event sink: every event counted, none exported (the export
    to Application Insights, serialisation and the network, is not measured)."""

    def __init__(self, counted: Any) -> None:
        self.counted = counted

    def send(self, events: Any) -> None:
        self.counted.send(events)


def cold_start_child(path: str, import_seconds: float, sinks: str = "memory") -> None:
    """In a fresh process that has just imported ``function_app``: process the first batch and
    print the timings as JSON. ``sinks``: ``function`` builds the Function's own processor
    (`chargeback.runtime.default_processor`: the Application Insights sink with OpenTelemetry
    and the exporter, Blob Storage dead letters), its events emitted but not flushed;
    ``memory`` an in-memory sink."""
    quiet()
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import get_settings

    start = time.perf_counter()
    with open(path, "rb") as lines:
        messages = as_raw([line.rstrip(b"\n") for line in lines])
    counted = MemorySink()
    if sinks == "function":
        from chargeback.runtime import default_processor

        processor = default_processor()
        processor.events = _Unsent(counted)
    else:
        processor = Processor(get_settings(), counted, MemoryDeadLetters())
    processor.process_batch(messages)
    done = time.time()
    estimated = sum(1 for e in counted.events if e.dimensions.get("TokenSource") == "estimated")
    result = {
        "done": done,
        "import_s": import_seconds,
        "batch_s": time.perf_counter() - start,
        "events": len(counted.events),
        "estimated": estimated,
    }
    sys.stdout.write(json.dumps(result) + "\n")


def cold_start(first_batch: list[bytes], runs: int, sinks: str) -> dict[str, Any]:
    env = _child_env()
    if sinks == "function":
        env.update(_COLD_ENV)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "first-batch.jsonl"
        path.write_bytes(b"".join(body + b"\n" for body in first_batch))
        results = []
        for _ in range(runs):
            spawned = time.time()
            done = subprocess.run(
                [sys.executable, "-c", _COLD, str(path), sinks],
                capture_output=True,
                check=True,
                cwd=_project_root(),
                env=env,
            )
            result = json.loads(done.stdout.decode().strip().splitlines()[-1])
            result["total_s"] = result["done"] - spawned
            results.append(result)
    return {
        "total_s": statistics.median(r["total_s"] for r in results),
        "import_s": statistics.median(r["import_s"] for r in results),
        "batch_s": statistics.median(r["batch_s"] for r in results),
        "events": results[0]["events"],
        "estimated": results[0]["estimated"],
        "messages": len(first_batch),
    }


_MEMORY = (
    "import function_app\n"
    "from chargeback.tools.bench import memory_child\n"
    "memory_child(__import__('sys').argv[1])\n"
)


def _rss_mb() -> float:
    """The peak resident set of this process so far, in MB.

    Linux: ``VmHWM`` of /proc/self/status, this process's own high-water mark (``ru_maxrss``
    keeps the parent's across fork and exec). Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def memory_child(path: str) -> None:
    """In a fresh process: one batch of large messages; print peak RSS and heap figures."""
    import tracemalloc

    quiet()

    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import get_settings

    with open(path, "rb") as lines:
        messages = as_raw([line.rstrip(b"\n") for line in lines])
    before = _rss_mb()
    sink = MemorySink()
    Processor(get_settings(), sink, MemoryDeadLetters()).process_batch(messages)
    after = _rss_mb()
    # Again, Python's heap alone, now that the encodings are loaded: what the batch itself holds.
    tracemalloc.start()
    Processor(get_settings(), MemorySink(), MemoryDeadLetters()).process_batch(messages)
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "before_mb": before,
        "peak_mb": after,
        "heap_peak_mb": heap_peak / 2**20,
        "events": len(sink.events),
        "input_mb": sum(len(m.body) for m in messages) / 2**20,
    }
    sys.stdout.write(json.dumps(result) + "\n")


def measure_memory(bodies: list[bytes]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large-batch.jsonl"
        path.write_bytes(b"".join(body + b"\n" for body in bodies))
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY, str(path)],
            capture_output=True,
            check=True,
            cwd=_project_root(),
            env=_child_env(),
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
