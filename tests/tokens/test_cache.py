"""Issue 18, point 3: the token-count cache. A chat application re-sends its whole history on
every turn; with the cache an estimate tokenizes the new text only, and says exactly what it
says without the cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.bodies import Choice, Exchange, parse_exchange
from chargeback.gateway import parse_gateway_message
from chargeback.receive import RawMessage
from chargeback.tokens import TokenCountCache, estimate, get_encoding
from chargeback.tools.accuracy import gateway_message
from chargeback.tools.bench.corpus import prose_of

O200K = get_encoding("o200k_base")


@dataclass
class _Counted:
    """An encoding that notes what it is asked to tokenize (the cache's `Encoding`)."""

    name: str = "o200k_base"
    texts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def encode_ordinary(self, text: str) -> list[int]:
        with self._lock:
            self.texts.append(text)
        return O200K.encode_ordinary(text)


@pytest.fixture(scope="module")
def prose(records: list[dict[str, Any]]) -> list[str]:
    """The corpus' own messages and answers (of 64 characters or more)."""
    found = [text for text in prose_of(records) if len(text) >= 64]
    assert len(found) > 20
    return found


def _conversation(texts: list[str]) -> list[Exchange]:
    """One chat, turn by turn: each turn sends the whole history and a new question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer briefly."}]
    turns = []
    for number, text in enumerate(texts):
        messages.append({"role": "user" if number % 2 == 0 else "assistant", "content": text})
        request = {"model": "gpt-4o", "messages": list(messages)}
        exchange = Exchange("chat.completion", "gpt-4o", None, request=request)
        exchange.choices = {0: Choice(text=[texts[(number + 1) % len(texts)]])}
        turns.append(exchange)
    return turns


def test_each_turn_tokenizes_only_what_is_new(prose: list[str]) -> None:
    texts = prose[:12]
    cache, counted = TokenCountCache(), _Counted()
    for exchange in _conversation(texts):
        for message in (exchange.request or {})["messages"]:
            cache.count(message["content"], counted)
    # 12 turns re-send 90 messages in all; each distinct text was tokenized once.
    assert sorted(counted.texts) == sorted({*texts, "Answer briefly."})


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_an_estimate_is_the_same_with_and_without_the_cache(
    prose: list[str], data: st.DataObject
) -> None:
    texts = data.draw(st.lists(st.sampled_from(prose), min_size=1, max_size=8))
    model = data.draw(st.sampled_from(["gpt-4o", "gpt-4", "o3-mini", "gpt-35-turbo"]))
    cache = TokenCountCache(entries=data.draw(st.integers(1, 16)))
    for exchange in _conversation(texts):
        assert estimate(exchange, model, cache=cache) == estimate(exchange, model)


def test_recorded_calls_estimate_the_same_with_a_warm_cache(records: list[dict[str, Any]]) -> None:
    cache = TokenCountCache()
    calls = []
    for record in records:
        if record["status"] != 200 or not isinstance(record.get("request"), dict):
            continue
        call = parse_gateway_message(RawMessage(gateway_message(record, "t")), max_bytes=10**7)
        model = record.get("model") or record["request"].get("model")
        if isinstance(model, str) and model.startswith(("gpt-4", "gpt-5", "o3", "o4")):
            calls.append((parse_exchange(call), model))
    assert len(calls) > 100
    cold = [estimate(exchange, model) for exchange, model in calls]
    for _ in range(2):  # the second time round, every long text is in the cache
        assert [estimate(exchange, model, cache=cache) for exchange, model in calls] == cold
    assert len(cache) > 0


def test_the_cache_is_bounded() -> None:
    cache, counted = TokenCountCache(entries=64), _Counted()
    for number in range(10_000):
        cache.count(f"{number:>300}", counted)
        assert len(cache) <= 2 * 64
    # What is still there is the most recent, and it is not tokenized again.
    before = len(counted.texts)
    assert cache.count(f"{9_999:>300}", counted) == O200K.encode_ordinary(f"{9_999:>300}").__len__()
    assert len(counted.texts) == before


def test_texts_and_encodings_do_not_share_counts() -> None:
    cache = TokenCountCache()
    text = "The quarterly review covered revenue, costs and hiring plans. " * 10
    cl100k = get_encoding("cl100k_base")
    assert cache.count(text, O200K) == len(O200K.encode_ordinary(text))
    assert cache.count(text, cl100k) == len(cl100k.encode_ordinary(text))
    assert cache.count(text + " ", O200K) == len(O200K.encode_ordinary(text + " "))
    lone = text + "\ud800"  # a lone surrogate, as a JSON escape can leave one
    assert cache.count(lone, O200K) == len(O200K.encode_ordinary(lone))


def test_threads_counting_at_once_get_the_right_counts(prose: list[str]) -> None:
    cache, counted = TokenCountCache(entries=8), _Counted()
    expected = {text: len(O200K.encode_ordinary(text)) for text in prose}
    wrong: list[str] = []

    def work(offset: int) -> None:
        for step in range(400):
            text = prose[(offset + step * 7) % len(prose)]
            if cache.count(text, counted) != expected[text]:
                wrong.append(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert len(cache) <= 2 * 8
