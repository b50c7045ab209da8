"""The benchmark's material: recorded exchanges by kind, their prose, large messages built from
it, and a small synthetic corpus when no recording is at hand."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from chargeback.tools.bench.policy import dumps
from chargeback.tools.recordings import ENDPOINT_PATHS, read_records

#: Where the large synthetic bodies end before the policy trims them.
LARGE_TARGET = 240 * 1024

_WORD = re.compile(r"\s*\S+")


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
    return len(dumps(record["request"])) + len(record.get("response_text") or "")


def by_kind(records: list[dict[str, Any]], kinds: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The records of each kind (as `chargeback.tools.bench.mix.MIX` names them)."""
    pools: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
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
                kept = "data: " + dumps(chunk)
        events.append(kept)
    return {**record, "request": request, "response_text": "\n\n".join(events), "usage": None}


def prose_of(records: list[dict[str, Any]]) -> list[str]:
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


# --- Large messages built from real text ----------------------------------------------------


def prose(texts: list[str], size: int, rng: random.Random) -> Iterator[str]:
    total = 0
    while total < size:
        text = rng.choice(texts)
        total += len(text)
        yield text


def large_conversation(texts: list[str], rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant for the finance team."}
    ]
    for number, text in enumerate(prose(texts, LARGE_TARGET, rng)):
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
    return make_record("chat", False, {"model": "gpt-4o", "messages": messages}, dumps(response))


def large_stream(texts: list[str], rng: random.Random) -> dict[str, Any]:
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
    lines.append(sse_chunk(head, {**first, "logprobs": None, "finish_reason": None}))
    size = 0
    for text in prose(texts, LARGE_TARGET, rng):
        for word in _WORD.findall(text):
            choice = {"index": 0, "delta": {"content": word}, "logprobs": None}
            line = sse_chunk(head, {**choice, "finish_reason": None})
            size += len(line)
            lines.append(line)
        if size > LARGE_TARGET:
            break
    stop = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    lines.append(sse_chunk(head, stop))
    lines.append("data: [DONE]\n\n")
    request = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": rng.choice(texts)}],
    }
    return make_record("chat", True, request, "".join(lines))


def sse_chunk(head: dict[str, Any], choice: dict[str, Any]) -> str:
    return "data: " + dumps({**head, "choices": [choice]}) + "\n\n"


def large_embeddings(texts: list[str], rng: random.Random) -> dict[str, Any]:
    # 16 passages of about 11 KB (a document split for a search index), 176 KB in all.
    passage = " ".join(prose(texts, 16 * 11_000, rng))
    inputs = [passage[i * 11_000 : (i + 1) * 11_000] for i in range(16)]
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
    return make_record("embeddings", False, request, dumps(response))


def make_record(
    endpoint: str, stream: bool, request: dict[str, Any], response: str
) -> dict[str, Any]:
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
        records.append(make_record("chat", False, request, dumps(chat)))
        head = {"id": f"chatcmpl-s{number}", "object": "chat.completion.chunk"}
        head["model"] = "gpt-4o-2024-08-06"
        chunks = [
            sse_chunk(head, {"index": 0, "delta": {"content": w}, "finish_reason": None})
            for w in _WORD.findall(answer)
        ]
        chunks.append("data: " + dumps({**head, "choices": [], "usage": usage}) + "\n\n")
        stream_request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        records.append(
            make_record("chat", True, stream_request, "".join(chunks) + "data: [DONE]\n\n")
        )
        output = [{"type": "message", "content": [{"type": "output_text", "text": answer}]}]
        responses: dict[str, Any] = {"object": "response", "output": output}
        responses["model"] = "gpt-4o-2024-08-06"
        responses["usage"] = {"input_tokens": 20, "output_tokens": 40, "total_tokens": 60}
        records.append(
            make_record(
                "responses", False, {"model": "gpt-4o", "input": question}, dumps(responses)
            )
        )
        embedding: dict[str, Any] = {"object": "list"}
        embedding["data"] = [{"index": 0, "embedding": [0.01] * 64}]
        embedding["usage"] = {"prompt_tokens": 12, "total_tokens": 12}
        embedding["model"] = "text-embedding-3-small"
        request = {"model": "text-embedding-3-small", "input": question}
        records.append(make_record("embeddings", False, request, dumps(embedding)))
    error = make_record("chat", False, {"model": "gpt-4o", "messages": []}, '{"error":{}}')
    records.append({**error, "status": 429})
    return records
