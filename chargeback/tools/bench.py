"""``python -m chargeback bench``: how close the processor runs to the work it cannot avoid.

The mix is built from recorded exchanges (``tests/data/recorded-exchanges.jsonl`` by default,
``--corpus`` to choose another file of the same format; a small synthetic mix when no corpus is
found) wrapped as the APIM policy in ``infra/apim/chargeback-outbound.xml`` would send them: v1
messages, small fields first, ``usage`` and ``model`` copied out of the response where the policy
finds them, bodies trimmed so that the message stays under 200 KB. It holds:

- non-streaming chat, Responses and embeddings calls, with usage;
- chat streams with a usage chunk, and Responses streams (usage in ``response.completed``);
- chat streams without usage (``stream_options.include_usage`` not set): tokens are estimated;
- a few errors (4xx, skipped);
- a few messages near 200 KB: recorded calls with images or long reasoning streams, a long
  conversation, a long answer streamed without usage and a large embeddings input, all built from
  the corpus' own text and cut as the policy cuts them.

Measured in one run:

- **pipeline**: ``Processor(settings, MemorySink(), MemoryDeadLetters()).process_batch`` on
  batches of 100, the Function's own code path up to and including the event objects; the
  Application Insights exporter (serialisation and the network send) is not part of it;
- **baseline**: for the same messages, orjson decoding of the message, of its bodies (the usable
  prefix of a cut body; a stream's events joined into one JSON array and decoded in one call, as
  the pipeline decodes them, when the stream has the usual layout, else each ``data:`` line) and
  ``encode_ordinary`` of exactly the texts the estimator counted for that message (recorded from
  the pipeline itself);
- **ratio** = pipeline time / baseline time, each the fastest of ``--repeat`` interleaved runs.
  The pipeline does not decode a response body when the message carries the policy's copy of
  usage and model (the call is billed on it, CONTRACTS §1a; it only looks whether the body
  streams and was cut), while the baseline decodes every body: the report says how many
  messages carry it, and gives the ratio on the **needs-bodies subset** too, the messages
  without it, measured the same way;
- **cold start**: a fresh interpreter that imports ``function_app``, builds the Function's own
  processor (`chargeback.runtime.default_processor`: the Application Insights sink, with
  OpenTelemetry and the exporter, and Blob Storage dead letters, pointed at endpoints nothing
  listens on and never contacted) and processes a first batch of 100 messages, its events
  emitted into the sink but not exported (encodings load on the first estimate, so that cost is
  in); wall time from spawning the process; median of ``--cold-runs``. Also reported with an
  in-memory sink instead;
- **peak memory**: a fresh interpreter that imports ``function_app`` and processes one batch of
  ``--memory-messages`` messages of about 200 KB; the process's peak resident set (what the
  Function pays), and the Python heap's own peak (tracemalloc) for the batch alone.

The last line reads ``bench: messages=N pipeline_mps=X baseline_mps=Y ratio=R cold_start_s=S
peak_mb=M`` (CONTRACTS §3).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import tiktoken

    from chargeback.receive import RawMessage

__all__ = [
    "Sample",
    "build_mix",
    "cold_start_child",
    "large_batch",
    "load_corpus",
    "memory_child",
    "policy_message",
    "run",
]

DEFAULT_CORPUS = Path("tests/data/recorded-exchanges.jsonl")
BATCH_SIZE = 100
#: The policy keeps a message under APIM's 200 KB log-to-eventhub limit, with 2 KB spare.
POLICY_LIMIT = 200 * 1024 - 2048
#: Where the large synthetic bodies end before the policy trims them.
LARGE_TARGET = 240 * 1024

_ENDPOINTS = {
    "chat": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}
_API_VERSION = "2024-10-21"
_WORD = re.compile(r"\s*\S+")

#: One cycle of the mix: kind -> how many in 50 messages.
MIX: tuple[tuple[str, int], ...] = (
    ("chat", 17),
    ("responses", 9),
    ("chat-stream-usage", 5),
    ("chat-stream-estimate", 6),
    ("responses-stream", 4),
    ("embeddings", 5),
    ("error", 1),
    ("large", 3),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One gateway message of the mix."""

    kind: str
    body: bytes
    #: ``emitted`` or ``skipped``: what the processor should make of it.
    expect: str = "emitted"


# --- The corpus -----------------------------------------------------------------------------


def load_corpus(path: Path | None) -> list[dict[str, Any]] | None:
    """Records in the format of ``recorded-exchanges.jsonl``, or None when there is no file."""
    if path is None or not path.is_file():
        return None
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines if line.strip()]


def _known_model(record: dict[str, Any]) -> bool:
    from chargeback.tokens import encoding_name_for_model

    model = record.get("model") or record["request"].get("model")
    return isinstance(model, str) and encoding_name_for_model(model) is not None


def _size(record: dict[str, Any]) -> int:
    return len(_dumps(record["request"])) + len(record.get("response_text") or "")


def _pools(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    pools: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in MIX}
    for record in records:
        if record.get("endpoint") not in _ENDPOINTS or not isinstance(record.get("request"), dict):
            continue
        if not _known_model(record):
            continue
        if record["status"] != 200:
            pools["error"].append(record)
            continue
        if _size(record) >= 180 * 1024:
            pools["large"].append(record)
            continue
        endpoint, stream = record["endpoint"], record["stream"]
        if endpoint == "embeddings":
            pools["embeddings"].append(record)
        elif endpoint == "responses":
            pools["responses-stream" if stream else "responses"].append(record)
        elif stream:
            if _stream_usage(record["response_text"]):
                pools["chat-stream-usage"].append(record)
            pools["chat-stream-estimate"].append(_without_stream_usage(record))
        elif record["usage"] is not None:
            pools["chat"].append(record)
    return pools


def _stream_usage(text: str) -> bool:
    return any(
        line.startswith("data:") and '"usage":{' in line.replace(" ", "")
        for line in text.splitlines()
    )


def _without_stream_usage(record: dict[str, Any]) -> dict[str, Any]:
    """The same stream as a client that did not set ``stream_options.include_usage`` gets it:
    no usage chunk at the end."""
    request = {k: v for k, v in record["request"].items() if k != "stream_options"}
    events = []
    for event in record["response_text"].split("\n\n"):
        kept = event
        if event.startswith("data:") and '"usage"' in event:
            chunk = orjson.loads(event[5:])
            if isinstance(chunk.get("usage"), dict):
                if not chunk.get("choices"):
                    continue  # the usage chunk itself
                chunk["usage"] = None
                kept = "data: " + _dumps(chunk)
        events.append(kept)
    return {**record, "request": request, "response_text": "\n\n".join(events), "usage": None}


def _texts(records: list[dict[str, Any]]) -> list[str]:
    """Real prose from the corpus: message contents and answers, for the large bodies."""
    found: dict[str, None] = {}
    for record in records:
        for message in record["request"].get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str) and len(content) > 40:
                found[content] = None
        try:
            response = orjson.loads(record.get("response_text") or "")
        except orjson.JSONDecodeError:
            continue
        for choice in response.get("choices") or [] if isinstance(response, dict) else []:
            content = (choice.get("message") or {}).get("content")
            if isinstance(content, str) and len(content) > 40:
                found[content] = None
    return list(found) or [_LOREM]


# --- The policy -----------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    # Newtonsoft's Formatting.None: no spaces, non-ASCII as is.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _reported(response_body: str, stream: bool) -> tuple[Any, str | None]:
    """The usage and model the policy copies out of the response (the same search it makes)."""
    reported: Any = None
    try:
        if stream:
            for raw_line in reversed(response_body.split("\n")):
                line = raw_line.strip()
                if line.startswith("data:") and '"usage":{' in line.replace(" ", ""):
                    reported = json.loads(line[5:].strip())
                    break
        elif response_body.lstrip().startswith("{"):
            reported = json.loads(response_body)
    except ValueError:
        return None, None
    if isinstance(reported, dict) and isinstance(reported.get("response"), dict):
        reported = reported["response"]
    if not isinstance(reported, dict):
        return None, None
    usage = reported.get("usage") if isinstance(reported.get("usage"), dict) else None
    model = reported.get("model") if isinstance(reported.get("model"), str) else None
    return usage, model


def policy_message(
    *,
    request_id: str,
    timestamp: datetime,
    url: str,
    status: int,
    stream: bool,
    request_body: str,
    response_body: str,
    subscription: str = "finance-chatbot",
    business_unit: str = "finance",
) -> bytes:
    """A v1 message as ``infra/apim/chargeback-outbound.xml`` writes it, trimmed as it trims."""
    usage, model = _reported(response_body, stream)
    message: dict[str, Any] = {
        "version": 1,
        "requestId": request_id,
        "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{timestamp.microsecond // 1000:03d}Z",
        "method": "POST",
        "url": url,
        "statusCode": status,
        "operationId": _OPERATION_IDS.get(url.rsplit("/", 1)[-1].split("?", 1)[0]),
        "apiId": "azure-openai",
        "productId": business_unit,
        "subscriptionId": subscription,
        "subscriptionName": subscription.replace("-", " ").title(),
        "userId": "1",
        "appId": None,
        "businessUnit": business_unit,
        "endUser": None,
        "clientIp": "10.1.2.3",
        "backendId": "aoai-eastus",
        "region": "East US",
        "responseContentType": "text/event-stream" if stream else "application/json",
    }
    if model is not None:
        message["model"] = model
    if usage is not None:
        message["usage"] = usage
    message["requestBody"] = request_body
    message["responseBody"] = response_body
    text = _dumps(message).encode()
    over = len(text) - POLICY_LIMIT
    if over > 0:
        response_first = len(response_body) >= len(request_body)
        first, second = (
            (response_body, request_body) if response_first else (request_body, response_body)
        )
        cut_first = min(over, len(first))
        first = first[: len(first) - cut_first]
        second = second[: len(second) - min(over - cut_first, len(second))]
        message["requestBody"] = second if response_first else first
        message["responseBody"] = first if response_first else second
        text = _dumps(message).encode()
    return text


_OPERATION_IDS = {
    "completions": "ChatCompletions_Create",
    "embeddings": "embeddings_create",
    "responses": "responses_create",
}


def _url(record: dict[str, Any], deployment: str) -> str:
    path = _ENDPOINTS[record["endpoint"]]
    return (
        f"https://gw.contoso.com/openai/deployments/{deployment}/{path}?api-version={_API_VERSION}"
    )


def _deployment(record: dict[str, Any]) -> str:
    model = record["request"].get("model") or record.get("model") or "gpt-4o"
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", str(model))


def _wrap(record: dict[str, Any], request_id: str, timestamp: datetime) -> bytes:
    return policy_message(
        request_id=request_id,
        timestamp=timestamp,
        url=_url(record, _deployment(record)),
        status=record["status"],
        stream=bool(record["stream"]),
        request_body=_dumps(record["request"]),
        response_body=record.get("response_text") or "",
    )


# --- Large messages built from real text ----------------------------------------------------


def _prose(texts: list[str], size: int, rng: random.Random) -> Iterator[str]:
    total = 0
    while total < size:
        text = rng.choice(texts)
        total += len(text)
        yield text


def _large_conversation(texts: list[str], rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant for the finance team."}
    ]
    for number, text in enumerate(_prose(texts, LARGE_TARGET, rng)):
        messages.append({"role": "user" if number % 2 == 0 else "assistant", "content": text})
    messages.append({"role": "user", "content": "Summarise the discussion above in one line."})
    answer = "The team reviewed the quarter and agreed on next steps."
    response = {
        "id": "chatcmpl-bench-conversation",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": LARGE_TARGET // 4,
            "completion_tokens": 12,
            "total_tokens": LARGE_TARGET // 4 + 12,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_bench",
    }
    return _record("chat", False, {"model": "gpt-4o", "messages": messages}, _dumps(response))


def _large_stream(texts: list[str], rng: random.Random) -> dict[str, Any]:
    """A long answer streamed word by word, without a usage chunk: tokens are estimated."""
    head = {
        "id": "chatcmpl-bench-stream",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_bench",
    }
    lines = []
    first = {"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}}
    lines.append(_chunk(head, {**first, "logprobs": None, "finish_reason": None}))
    size = 0
    for text in _prose(texts, LARGE_TARGET, rng):
        for word in _WORD.findall(text):
            choice = {"index": 0, "delta": {"content": word}, "logprobs": None}
            line = _chunk(head, {**choice, "finish_reason": None})
            size += len(line)
            lines.append(line)
        if size > LARGE_TARGET:
            break
    stop = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    lines.append(_chunk(head, stop))
    lines.append("data: [DONE]\n\n")
    request = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": rng.choice(texts)}],
    }
    return _record("chat", True, request, "".join(lines))


def _chunk(head: dict[str, Any], choice: dict[str, Any]) -> str:
    return "data: " + _dumps({**head, "choices": [choice]}) + "\n\n"


def _large_embeddings(texts: list[str], rng: random.Random) -> dict[str, Any]:
    # 16 passages of about 11 KB (a document split for a search index), 176 KB in all.
    prose = " ".join(_prose(texts, 16 * 11_000, rng))
    inputs = [prose[i * 11_000 : (i + 1) * 11_000] for i in range(16)]
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": [round(rng.uniform(-0.08, 0.08), 9) for _ in range(1536)],
        }
        for index in range(len(inputs))
    ]
    tokens = sum(len(text) for text in inputs) // 4
    response = {
        "object": "list",
        "data": data,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    request = {"input": inputs, "model": "text-embedding-3-small", "encoding_format": "float"}
    return _record("embeddings", False, request, _dumps(response))


def _record(endpoint: str, stream: bool, request: dict[str, Any], response: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "stream": stream,
        "status": 200,
        "request": request,
        "response_text": response,
        "usage": None,
        "model": request.get("model"),
    }


# --- A synthetic corpus, when none is found -------------------------------------------------

_LOREM = (
    "Chargeback assigns the cost of shared Azure OpenAI capacity to the teams that use it. "
    "Every call through the gateway is counted once, by the tokens the API reported or, when a "
    "stream carried no usage, by counting the text with the model's own tokenizer."
)


def synthetic_corpus(rng: random.Random) -> list[dict[str, Any]]:
    """A handful of exchanges in the corpus format, for when no recorded corpus is at hand."""
    words = _LOREM.split()

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    records = []
    for number in range(24):
        question, answer = sentence(12 + number), sentence(30 + 2 * number)
        usage = {"prompt_tokens": 20 + number, "completion_tokens": 40 + 2 * number}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        chat = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
            "usage": usage,
        }
        request = {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}
        records.append(_record("chat", False, request, _dumps(chat)))
        head = {"id": f"chatcmpl-s{number}", "object": "chat.completion.chunk"}
        head["model"] = "gpt-4o-2024-08-06"
        chunks = [
            _chunk(head, {"index": 0, "delta": {"content": w}, "finish_reason": None})
            for w in _WORD.findall(answer)
        ]
        chunks.append("data: " + _dumps({**head, "choices": [], "usage": usage}) + "\n\n")
        stream_request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        records.append(_record("chat", True, stream_request, "".join(chunks) + "data: [DONE]\n\n"))
        output = [{"type": "message", "content": [{"type": "output_text", "text": answer}]}]
        responses: dict[str, Any] = {"object": "response", "output": output}
        responses["model"] = "gpt-4o-2024-08-06"
        responses["usage"] = {"input_tokens": 20, "output_tokens": 40, "total_tokens": 60}
        records.append(
            _record("responses", False, {"model": "gpt-4o", "input": question}, _dumps(responses))
        )
        embedding: dict[str, Any] = {"object": "list"}
        embedding["data"] = [{"index": 0, "embedding": [0.01] * 64}]
        embedding["usage"] = {"prompt_tokens": 12, "total_tokens": 12}
        embedding["model"] = "text-embedding-3-small"
        request = {"model": "text-embedding-3-small", "input": question}
        records.append(_record("embeddings", False, request, _dumps(embedding)))
    error = _record("chat", False, {"model": "gpt-4o", "messages": []}, '{"error":{}}')
    records.append({**error, "status": 429})
    return records


# --- The mix --------------------------------------------------------------------------------


def _ids(rng: random.Random) -> Iterator[tuple[str, datetime]]:
    moment = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    while True:
        moment += timedelta(milliseconds=rng.randint(1, 40))
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), moment


def build_mix(
    records: list[dict[str, Any]] | None, count: int, *, seed: int = 7
) -> tuple[list[Sample], str]:
    """``count`` gateway messages in the proportions of `MIX`, and a line that describes them."""
    rng = random.Random(seed)
    source = "corpus"
    if not records:
        records, source = synthetic_corpus(rng), "synthetic"
    pools = _pools(records)
    texts = _texts(records)
    builders: list[Callable[[], dict[str, Any]]] = [
        lambda: _large_conversation(texts, rng),
        lambda: _large_stream(texts, rng),
        lambda: _large_embeddings(texts, rng),
    ]
    large = [builder() for builder in builders] + pools["large"]
    pools["large"] = large
    order = [kind for kind, share in MIX for _ in range(share)]
    rng.shuffle(order)
    cursors: Counter[str] = Counter()
    for kind in pools:
        rng.shuffle(pools[kind])
    ids = _ids(rng)
    samples = []
    for number in range(count):
        kind = order[number % len(order)]
        pool = pools[kind] or pools["chat"] or records
        record = pool[cursors[kind] % len(pool)]
        cursors[kind] += 1
        request_id, moment = next(ids)
        expect = "skipped" if record["status"] != 200 else "emitted"
        samples.append(Sample(kind, _wrap(record, request_id, moment), expect))
    return samples, source


def large_batch(records: list[dict[str, Any]] | None, count: int, *, seed: int = 11) -> list[bytes]:
    """``count`` messages of about 200 KB: the large kinds of the mix in turn."""
    rng = random.Random(seed)
    if not records:
        records = synthetic_corpus(rng)
    texts = _texts(records)
    kinds = [_large_conversation, _large_stream, _large_embeddings]
    real = [r for r in _pools(records)["large"] if r["status"] == 200]
    ids = _ids(rng)
    out = []
    for number in range(count):
        request_id, moment = next(ids)
        turn = number % (len(kinds) + len(real))
        record = kinds[turn](texts, rng) if turn < len(kinds) else real[turn - len(kinds)]
        out.append(_wrap(record, request_id, moment))
    return out


# --- Measuring ------------------------------------------------------------------------------


def _raw(bodies: Sequence[bytes]) -> list[RawMessage]:
    from chargeback.receive import RawMessage

    return [
        RawMessage(body=body, partition="0", sequence_number=number)
        for number, body in enumerate(bodies)
    ]


def _batches(messages: list[RawMessage]) -> list[list[RawMessage]]:
    return [messages[i : i + BATCH_SIZE] for i in range(0, len(messages), BATCH_SIZE)]


@dataclass
class _PipelineRun:
    seconds: float
    outcomes: Counter[str]
    sources: Counter[str]
    events: int
    all_seconds: list[float] = field(default_factory=list)
    all_baseline: list[float] = field(default_factory=list)


def _measure(
    batches: list[list[RawMessage]], work: list[_Work], repeat: int
) -> tuple[float, float, list[float], _PipelineRun]:
    """The fastest pipeline and baseline times of ``repeat`` interleaved runs, the ratio of
    each repetition, and the last pipeline run (with every time of both in it)."""
    pipeline_times, baseline_times, ratios = [], [], []
    last: _PipelineRun | None = None
    for _ in range(max(1, repeat)):
        last = _run_pipeline(batches)
        base = _run_baseline(work)
        pipeline_times.append(last.seconds)
        baseline_times.append(base)
        ratios.append(last.seconds / base)
    assert last is not None
    last.all_seconds, last.all_baseline = pipeline_times, baseline_times
    return min(pipeline_times), min(baseline_times), ratios, last


def _policy_copy(body: bytes) -> tuple[bool, bool]:
    """Whether a message carries the policy's copy of a readable usage, and of the model."""
    from chargeback.tokens import usage_from_api

    fields = orjson.loads(body)
    usage = usage_from_api(fields.get("usage")) if isinstance(fields.get("usage"), dict) else None
    return usage is not None, bool(fields.get("model"))


def _run_pipeline(batches: list[list[RawMessage]]) -> _PipelineRun:
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.emit.event import MemorySink
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


def _prepare_baseline(messages: list[RawMessage]) -> list[_Work]:
    """Per message: the prefix of any cut body, and the texts the pipeline counted for it."""
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.emit.event import MemorySink
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


def _run_baseline(work: list[_Work]) -> float:
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
    return Path(__file__).resolve().parents[2]


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


def _quiet() -> None:
    # As the CLI does: outcomes are counted here, the processor's own log stays quiet.
    logging.getLogger("chargeback").addHandler(logging.NullHandler())


class _Unflushed:
    """The Function's event sink, every event emitted into it (and counted), never flushed: the
    export to Application Insights (serialisation and the network) is not measured."""

    def __init__(self, sink: Any, counted: Any) -> None:
        self.sink = sink
        self.counted = counted

    def emit(self, event: Any) -> None:
        self.sink.emit(event)
        self.counted.emit(event)

    def flush(self) -> None:
        pass


def cold_start_child(path: str, import_seconds: float, sinks: str = "memory") -> None:
    """In a fresh process that has just imported ``function_app``: process the first batch and
    print the timings as JSON. ``sinks``: ``function`` builds the Function's own processor
    (`chargeback.runtime.default_processor`: the Application Insights sink with OpenTelemetry
    and the exporter, Blob Storage dead letters), its events emitted but not flushed;
    ``memory`` an in-memory sink."""
    _quiet()
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.emit.event import MemorySink
    from chargeback.pipeline import Processor
    from chargeback.settings import get_settings

    start = time.perf_counter()
    with open(path, "rb") as lines:
        messages = _raw([line.rstrip(b"\n") for line in lines])
    counted = MemorySink()
    if sinks == "function":
        from chargeback.runtime import default_processor

        processor = default_processor()
        processor.events = _Unflushed(processor.events, counted)
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


def _cold_start(first_batch: list[bytes], runs: int, sinks: str) -> dict[str, Any]:
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

    _quiet()

    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.emit.event import MemorySink
    from chargeback.pipeline import Processor
    from chargeback.settings import get_settings

    with open(path, "rb") as lines:
        messages = _raw([line.rstrip(b"\n") for line in lines])
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


def _memory(bodies: list[bytes]) -> dict[str, Any]:
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


# --- The command ----------------------------------------------------------------------------


def run(
    *,
    corpus: Path | None = DEFAULT_CORPUS,
    messages: int = 1000,
    repeat: int = 7,
    cold_runs: int = 5,
    memory_messages: int = 100,
    seed: int = 7,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark, print its report and return the figures of its last line."""
    stream = out or sys.stdout
    _quiet()

    def say(line: str) -> None:
        stream.write(f"bench: {line}\n")
        stream.flush()

    from chargeback.tokens import get_encoding

    records = load_corpus(corpus)
    samples, source = build_mix(records, messages, seed=seed)
    raw = _raw([s.body for s in samples])
    size = sum(len(s.body) for s in samples)
    kinds = Counter(s.kind for s in samples)
    where = f"{corpus} ({len(records or [])} records)" if source == "corpus" else source
    where += "" if source == "corpus" else " (no corpus found)"
    say(
        f"mix from {where}: {len(samples)} messages, {size / 2**20:.1f} MB, largest "
        f"{max(len(s.body) for s in samples) / 1024:.0f} KB"
    )
    say("  " + ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())))

    # Warm up: encodings loaded, code paths run once, the baseline's texts recorded.
    for name in ("o200k_base", "cl100k_base"):
        get_encoding(name)
    work = _prepare_baseline(raw)
    batches = _batches(raw)
    _run_pipeline(batches)
    _run_baseline(work)

    pipe_s, base_s, ratios, last = _measure(batches, work, repeat)
    ratio = pipe_s / base_s
    counted = sum(len(w.texts) for w in work)
    counted_chars = sum(len(t) for w in work for _, t in w.texts)
    expected = sum(1 for s in samples if s.expect == "emitted")
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(last.outcomes.items()))
    sources = ", ".join(f"{k}={v}" for k, v in sorted(last.sources.items()))
    say(
        f"pipeline: {pipe_s * 1000:.1f} ms for {len(samples)} messages in batches of "
        f"{BATCH_SIZE} (fastest of {len(ratios)}; median "
        f"{statistics.median(last.all_seconds) * 1000:.1f} ms) = {len(samples) / pipe_s:.0f} msg/s"
    )
    say(f"  outcomes {outcomes} (expected emitted={expected}); token source {sources}")
    say(
        f"baseline: {base_s * 1000:.1f} ms (fastest of {len(ratios)}; median "
        f"{statistics.median(last.all_baseline) * 1000:.1f} ms) = {len(samples) / base_s:.0f} "
        f"msg/s; orjson on messages and bodies, encode_ordinary on {counted} texts "
        f"({counted_chars / 1024:.0f} K characters)"
    )

    # What the pipeline does not decode: the policy's usage bills the call (CONTRACTS §1a), so
    # with it (and its model) the response body is only looked at; the baseline decodes every
    # body all the same. The ratio on the messages without it shows the rest.
    policy = [_policy_copy(s.body) for s in samples]
    billed = sum(1 for usage, _ in policy if usage)
    unread = sum(1 for usage, model in policy if usage and model)
    by_kind = Counter(s.kind for s, (usage, _) in zip(samples, policy, strict=True) if usage)
    say(
        f"policy usage in {billed} of {len(samples)} messages ({billed / len(samples):.0%}; "
        + ", ".join(f"{kind}={by_kind[kind]}/{kinds[kind]}" for kind in sorted(kinds))
        + f"): billed on it; with the policy's model too ({unread}) the pipeline does not decode "
        "the response body (it looks whether it streams and was cut); the baseline decodes "
        "every body"
    )
    say(
        f"ratio pipeline/baseline {ratio:.3f} (per repetition {min(ratios):.3f}.."
        f"{max(ratios):.3f}); event export to Application Insights not included"
    )
    needy = [i for i, (usage, _) in enumerate(policy) if not usage]
    if needy:
        sub_pipe, sub_base, sub_ratios, _ = _measure(
            _batches([raw[i] for i in needy]), [work[i] for i in needy], repeat
        )
        say(
            f"needs-bodies subset (no policy usage): {len(needy)} messages, pipeline "
            f"{sub_pipe * 1000:.1f} ms, baseline {sub_base * 1000:.1f} ms, ratio "
            f"{sub_pipe / sub_base:.3f} (per repetition {min(sub_ratios):.3f}.."
            f"{max(sub_ratios):.3f})"
        )

    first = [s.body for s in samples[:BATCH_SIZE]]
    runs = max(1, cold_runs)
    bare = _cold_start(first, runs, "memory")
    cold = _cold_start(first, runs, "function")
    say(
        f"cold start: {cold['total_s']:.3f} s median of {runs} (fresh process: interpreter, "
        f"import function_app {cold['import_s']:.3f} s, the Function's processor built "
        f"(Application Insights sink: OpenTelemetry and the exporter; Blob dead letters) and a "
        f"first batch of {cold['messages']} {cold['batch_s']:.3f} s with {cold['estimated']} "
        f"estimated, encodings loaded on first use, events emitted, not exported); with an "
        f"in-memory sink instead {bare['total_s']:.3f} s (batch {bare['batch_s']:.3f} s)"
    )

    memory = _memory(large_batch(records, max(1, memory_messages), seed=seed + 4))
    say(
        f"memory: batch of {max(1, memory_messages)} messages, {memory['input_mb']:.1f} MB in "
        f"all: peak RSS {memory['peak_mb']:.0f} MB (before the batch {memory['before_mb']:.0f}"
        f" MB, after imports); Python heap peak during a batch {memory['heap_peak_mb']:.1f} MB"
        f" (tracemalloc)"
    )

    figures = {
        "messages": len(samples),
        "pipeline_mps": round(len(samples) / pipe_s),
        "baseline_mps": round(len(samples) / base_s),
        "ratio": round(ratio, 3),
        "cold_start_s": round(cold["total_s"], 3),
        "peak_mb": round(memory["peak_mb"]),
        "events": last.events,
        "expected_events": expected,
    }
    say(" ".join(f"{key}={figures[key]}" for key in list(figures)[:6]))
    return figures
