"""The least work: what processing a mix cannot avoid, timed on the same messages as the
pipeline.

Per message: orjson decoding of the message; of a body only when the bill needs it (no
readable ``usage`` copied by the policy: the request and the response; ``usage`` but no
``model``: the response; an error status or both copied: no body at all); of a body cut short,
its usable prefix closed, decoded once (what a prefix-aware decoder would do); of a stream, its
events joined into one JSON array and decoded in one call when the stream has the usual layout
and that is the faster way for it, else each ``data:`` line. Then ``encode_ordinary`` of exactly
the texts the pipeline tokenized for that message (recorded from the pipeline itself, with its
token-count cache, over the mix in order). Per batch: orjson serialisation of the batch's
Application Insights envelopes (written beforehand by `chargeback.emit.envelopes`).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import tiktoken

    from chargeback.receive import RawMessage

__all__ = ["BaselineBatch", "Work", "needs_bodies", "prepare_baseline", "run_baseline"]


@dataclass
class Work:
    """What the baseline does for one message, prepared before timing."""

    body: bytes
    #: The request text to decode (the closed prefix of a cut one); None: the bill does not
    #: need it.
    request: str | None = None
    #: The response: JSON text to decode, or a stream (``stream``); None: not needed.
    response: str | None = None
    stream: bool = False
    #: A stream in the usual layout, when decoding it in one call is the faster technique for
    #: it (`_faster_stream_decode`); None: line by line.
    layout: _Layout | None = None
    texts: list[tuple[tiktoken.Encoding, str]] = field(default_factory=list)


@dataclass
class BaselineBatch:
    work: list[Work]
    #: The batch's envelopes, as the sink writes them.
    envelopes: list[dict[str, Any]]


def needs_bodies(fields: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the bill needs the request body, and the response body, of a v1 message."""
    from chargeback.tokens import usage_from_api

    status = fields.get("statusCode")
    if isinstance(status, int) and not 200 <= status < 300:
        return False, False
    usage = fields.get("usage")
    if isinstance(usage, dict) and usage_from_api(usage) is not None:
        return False, not fields.get("model")
    return True, True


def prepare_baseline(messages: list[RawMessage], batch_size: int) -> list[BaselineBatch]:
    """Per message, what the bill needs decoded and the texts the pipeline tokenized for it;
    per batch, its envelopes."""
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings

    sink = MemorySink()
    processor = Processor(load_settings(), sink, MemoryDeadLetters())
    writer = _writer()
    batches: list[BaselineBatch] = []
    for number, raw in enumerate(messages):
        if number % batch_size == 0:
            batches.append(BaselineBatch([], []))
        seen = len(sink.events)
        with _Recorder() as recorder:
            processor.process_batch([raw])
        batches[-1].work.append(_work(raw.body, recorder.texts))
        batches[-1].envelopes.extend(writer.envelope(e) for e in sink.events[seen:])
    return batches


def _writer() -> Any:
    from opentelemetry.sdk.resources import Resource

    from chargeback.emit.azure_monitor import LOGGER_NAME
    from chargeback.emit.envelopes import EnvelopeWriter, exporter_tags
    from chargeback.local.store import LOCAL_IKEY

    resource = Resource.create({"service.name": "chargeback-processor"})
    return EnvelopeWriter(LOCAL_IKEY, exporter_tags(resource), LOGGER_NAME)


def _work(body: bytes, texts: list[tuple[tiktoken.Encoding, str]]) -> Work:
    fields = orjson.loads(body)
    item = Work(body, texts=texts)
    request_needed, response_needed = needs_bodies(fields)
    request, response = fields.get("requestBody"), fields.get("responseBody")
    if request_needed and request:
        item.request = request if _decodes(request) else _closed(request)
    if response_needed and response:
        item.stream = "event-stream" in str(fields.get("responseContentType") or "")
        if item.stream:
            item.response = response
            item.layout = _faster_stream_decode(response)
        else:
            item.response = response if _decodes(response) else _closed(response)
    return item


def run_baseline(batches: Sequence[BaselineBatch]) -> tuple[float, float]:
    """CPU and wall seconds of the least work on ``batches``."""
    loads, dumps, sub, decode_stream = orjson.loads, orjson.dumps, _EVENT_LINE.sub, _decode_stream
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        for item in batch.work:
            loads(item.body)
            if item.request is not None:
                loads(item.request)
            if item.response is not None:
                if item.stream:
                    decode_stream(item.response, item.layout, loads, sub)
                else:
                    loads(item.response)
            for encoding, text in item.texts:
                encoding.encode_ordinary(text)
        dumps(batch.envelopes)
    return time.process_time() - cpu, time.perf_counter() - wall


# --- Streams --------------------------------------------------------------------------------


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


_EVENT_LINE = re.compile(r"\nevent:[^\n]*")


def _stream_layout(body: str) -> _Layout | None:
    """The usual layout of a stream, as `chargeback.bodies.streams` recognises it; None when the
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


# --- Recording what the pipeline tokenizes ---------------------------------------------------


class _Recorder:
    """Notes every text the estimator hands to tiktoken while the pipeline runs."""

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
