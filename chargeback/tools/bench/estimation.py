"""Estimation alone, on the conversation mix: what the estimator spends with the token-count
cache (as the Function runs it: history already counted is not tokenized again) and without it,
on exchanges parsed beforehand. The same calls, as chat messages and the completion text, are
what ``scripts/litellm_compare.py`` hands LiteLLM's ``token_counter``."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargeback.bodies import Exchange
    from chargeback.tools.bench.mix import Sample

__all__ = ["Estimates", "chat_calls", "estimated_calls", "time_estimates"]


def estimated_calls(samples: Sequence[Sample]) -> list[tuple[Exchange, str]]:
    """Each message's exchange, parsed, and its model: what `estimate` is given."""
    from chargeback.bodies import parse_exchange
    from chargeback.emit import MemorySink
    from chargeback.emit.deadletter import MemoryDeadLetters
    from chargeback.gateway import parse_gateway_message
    from chargeback.pipeline import Processor
    from chargeback.settings import load_settings
    from chargeback.tools.bench.measure import as_raw

    processor = Processor(load_settings(), MemorySink(), MemoryDeadLetters())
    calls = []
    for raw in as_raw([s.body for s in samples]):
        call = parse_gateway_message(raw, max_bytes=processor.settings.max_message_bytes)
        exchange = parse_exchange(call)
        model = processor.model_of(call, exchange)
        if model is not None:
            calls.append((exchange, model))
    return calls


def chat_calls(calls: Sequence[tuple[Exchange, str]]) -> list[dict[str, Any]]:
    """The same calls as LiteLLM counts them: the request's messages, and the answer's text."""
    return [
        {
            "model": model,
            "messages": (exchange.request or {}).get("messages") or [],
            "completion": "".join("".join(choice.text) for choice in exchange.choices.values()),
        }
        for exchange, model in calls
    ]


@dataclass
class Estimates:
    """Median seconds to estimate every call of the mix, in order, with and without the
    cache (a fresh one each repetition), and the tokens counted."""

    cached: float
    uncached: float
    tokens: int
    calls: int


def time_estimates(calls: Sequence[tuple[Exchange, str]], repeat: int) -> Estimates:
    from chargeback.tokens import TokenCountCache, estimate

    def once(cache: bool) -> tuple[float, int]:
        store = TokenCountCache() if cache else None
        gc.collect()
        start = time.process_time()
        tokens = sum(estimate(exchange, model, cache=store).total for exchange, model in calls)
        return time.process_time() - start, tokens

    cached, uncached = [], []
    tokens = 0
    for _ in range(max(1, repeat)):
        seconds, tokens = once(cache=True)
        cached.append(seconds)
        seconds, counted = once(cache=False)
        uncached.append(seconds)
        assert counted == tokens, "the cache changed an estimate"
    return Estimates(statistics.median(cached), statistics.median(uncached), tokens, len(calls))
