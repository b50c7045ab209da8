"""The benchmark's mixes, built from recorded exchanges wrapped as the APIM policy sends them:

- `build_mix`: the main mix, every kind of call in the proportions of `MIX`;
- `small_mix`: the smallest recorded calls (messages under 2 KB) with the policy's usage, the
  most messages a second the Function meets. (Event Hubs' 1,000 events a second per throughput
  unit binds before its 1 MB only under 1 KB a message; the policy's v1 message with both bodies
  is never that small: its fixed fields alone are about 650 bytes, Azure's smallest chat
  response about 700.)
- `conversation_mix`: chat conversations whose every turn re-sends the history, streamed without
  usage, so every call is estimated;
- `large_batch`: messages of about 200 KB, for peak memory.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargeback.tools.bench.corpus import (
    by_kind,
    large_conversation,
    large_embeddings,
    large_stream,
    make_record,
    prose_of,
    sse_chunk,
    synthetic_corpus,
)
from chargeback.tools.bench.policy import POLICY_LIMIT, wrap

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_CORPUS",
    "MIX",
    "POLICY_LIMIT",
    "Sample",
    "build_mix",
    "conversation_mix",
    "large_batch",
    "small_mix",
]

DEFAULT_CORPUS = Path("tests/data/recorded-exchanges.jsonl")
BATCH_SIZE = 100
#: The small mix: messages up to this size (the smallest recorded calls with usage are 1.6 KB).
SMALL = 2048

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
_KINDS = [kind for kind, _ in MIX]


@dataclass(frozen=True, slots=True)
class Sample:
    """One gateway message of the mix."""

    kind: str
    body: bytes
    #: ``emitted`` or ``skipped``: what the processor should make of it.
    expect: str = "emitted"


def _ids(rng: random.Random) -> Iterator[tuple[str, datetime]]:
    moment = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    while True:
        moment += timedelta(milliseconds=rng.randint(1, 40))
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), moment


def build_mix(
    records: list[dict[str, Any]] | None, count: int, *, seed: int = 7
) -> tuple[list[Sample], str]:
    """``count`` gateway messages in the proportions of `MIX`, and where they came from."""
    rng = random.Random(seed)
    source = "corpus"
    if not records:
        records, source = synthetic_corpus(rng), "synthetic"
    pools = by_kind(records, _KINDS)
    texts = prose_of(records)
    builders: list[Callable[[], dict[str, Any]]] = [
        lambda: large_conversation(texts, rng),
        lambda: large_stream(texts, rng),
        lambda: large_embeddings(texts, rng),
    ]
    pools["large"] = [builder() for builder in builders] + pools["large"]
    order = [kind for kind, share in MIX for _ in range(share)]
    rng.shuffle(order)
    for kind in pools:
        rng.shuffle(pools[kind])
    return _draw(pools, records, order, count, rng), source


def _draw(
    pools: dict[str, list[dict[str, Any]]],
    records: list[dict[str, Any]],
    order: list[str],
    count: int,
    rng: random.Random,
) -> list[Sample]:
    cursors: Counter[str] = Counter()
    ids = _ids(rng)
    samples = []
    for number in range(count):
        kind = order[number % len(order)]
        pool = pools[kind] or pools["chat"] or records
        record = pool[cursors[kind] % len(pool)]
        cursors[kind] += 1
        request_id, moment = next(ids)
        expect = "skipped" if record["status"] != 200 else "emitted"
        samples.append(Sample(kind, wrap(record, request_id, moment), expect))
    return samples


def small_mix(records: list[dict[str, Any]] | None, count: int, *, seed: int = 13) -> list[Sample]:
    """``count`` messages of at most 2 KB that carry the policy's usage: the recorded calls with
    usage whose message is that small (a short question, a short answer)."""
    rng = random.Random(seed)
    small = [
        (record, kind)
        for kind, pool in by_kind(records or synthetic_corpus(rng), _KINDS).items()
        if kind in ("chat", "responses", "chat-stream-usage", "responses-stream", "embeddings")
        for record in pool
        if len(wrap(record, str(uuid.UUID(int=0)), datetime(2026, 1, 1, tzinfo=UTC))) <= SMALL
    ]
    if not small:
        small = [(r, "chat") for r in synthetic_corpus(rng) if r["status"] == 200]
    rng.shuffle(small)
    ids = _ids(rng)
    samples = []
    for number in range(count):
        record, kind = small[number % len(small)]
        request_id, moment = next(ids)
        samples.append(Sample(kind, wrap(record, request_id, moment)))
    return samples


def conversation_mix(
    records: list[dict[str, Any]] | None, conversations: int, turns: int, *, seed: int = 17
) -> list[Sample]:
    """``conversations`` chats of ``turns`` turns each, interleaved (users chatting at once):
    turn k sends the system prompt and the k questions and k - 1 answers so far, and streams
    its answer without a usage chunk, so that every call is estimated. Questions and answers are
    the corpus' own prose."""
    rng = random.Random(seed)
    texts = prose_of(records or synthetic_corpus(rng))
    ids = _ids(rng)
    chats = [_conversation(texts, turns, rng) for _ in range(conversations)]
    samples = []
    for turn in range(turns):
        for chat in chats:
            request_id, moment = next(ids)
            samples.append(Sample("conversation", wrap(chat[turn], request_id, moment)))
    return samples


def _conversation(texts: list[str], turns: int, rng: random.Random) -> list[dict[str, Any]]:
    system = "You are a helpful assistant for the finance team. Answer briefly."
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    calls = []
    for _ in range(turns):
        messages.append({"role": "user", "content": rng.choice(texts)})
        answer = rng.choice(texts)
        request = {"model": "gpt-4o", "stream": True, "messages": list(messages)}
        calls.append(make_record("chat", True, request, _streamed(answer)))
        messages.append({"role": "assistant", "content": answer})
    return calls


def _streamed(answer: str) -> str:
    """``answer`` as a chat stream without usage, a few words a chunk, as Azure sends it."""
    head = {
        "id": "chatcmpl-bench-turn",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_bench",
    }
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    lines = [sse_chunk(head, first)]
    words = answer.split(" ")
    for start in range(0, len(words), 3):
        # The pieces add up to the answer exactly, as the client keeps it for the next turn.
        piece = (" " if start else "") + " ".join(words[start : start + 3])
        lines.append(sse_chunk(head, {"index": 0, "delta": {"content": piece}}))
    lines.append(sse_chunk(head, {"index": 0, "delta": {}, "finish_reason": "stop"}))
    return "".join(lines) + "data: [DONE]\n\n"


def large_batch(records: list[dict[str, Any]] | None, count: int, *, seed: int = 11) -> list[bytes]:
    """``count`` messages of about 200 KB: the large kinds of the mix in turn."""
    rng = random.Random(seed)
    if not records:
        records = synthetic_corpus(rng)
    texts = prose_of(records)
    kinds = [large_conversation, large_stream, large_embeddings]
    real = [r for r in by_kind(records, _KINDS)["large"] if r["status"] == 200]
    ids = _ids(rng)
    out = []
    for number in range(count):
        request_id, moment = next(ids)
        turn = number % (len(kinds) + len(real))
        record = kinds[turn](texts, rng) if turn < len(kinds) else real[turn - len(kinds)]
        out.append(wrap(record, request_id, moment))
    return out
