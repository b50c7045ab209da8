"""The benchmark's mix: recorded exchanges wrapped as the APIM policy sends them."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chargeback.tools.recordings import ENDPOINT_PATHS, read_records

if TYPE_CHECKING:
    pass

DEFAULT_CORPUS = Path("tests/data/recorded-exchanges.jsonl")
BATCH_SIZE = 100
#: The policy keeps a message under APIM's 200 KB log-to-eventhub limit, with 2 KB spare.
POLICY_LIMIT = 200 * 1024 - 2048
#: Where the large synthetic bodies end before the policy trims them.
LARGE_TARGET = 240 * 1024

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
    return read_records(path)


def _known_model(record: dict[str, Any]) -> bool:
    from chargeback.tokens import encoding_name_for_model

    model = record.get("model") or record["request"].get("model")
    return isinstance(model, str) and encoding_name_for_model(model) is not None


def _size(record: dict[str, Any]) -> int:
    return len(_dumps(record["request"])) + len(record.get("response_text") or "")


def _pools(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    pools: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in MIX}
    for record in records:
        if record.get("endpoint") not in ENDPOINT_PATHS or not isinstance(
            record.get("request"), dict
        ):
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
    path = ENDPOINT_PATHS[record["endpoint"]]
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
