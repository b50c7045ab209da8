"""Every recorded exchange that carries a usage, wrapped as the gateway sends it, yields exactly
the usage the API reported, as the usage rules allow it: the one rule a recording breaks is
total = prompt + completion (Gemini's OpenAI-compatible API counts its thinking tokens in the
total only), and those two events carry the recomputed total, flagged."""

from __future__ import annotations

from typing import Any

import pytest

from chargeback import MemoryDeadLetters, MemorySink, Processor, RawMessage, load_settings
from tests.support.messages import load_records, v1_message

RECORDS = [r for r in load_records() if r["status"] == 200 and r["usage"]]


def _reported(usage: dict[str, Any]) -> dict[str, float]:
    if "input_tokens" in usage:
        prompt, completion = usage["input_tokens"], usage["output_tokens"]
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
        reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
    else:
        prompt, completion = usage["prompt_tokens"], usage.get("completion_tokens", 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    return {
        "PromptTokens": prompt,
        "CompletionTokens": completion,
        "TotalTokens": prompt + completion,
        "CachedTokens": cached or 0,
        "ReasoningTokens": reasoning or 0,
    }


def test_the_corpus_covers_every_operation_and_both_body_forms() -> None:
    kinds = {(r["endpoint"], r["stream"]) for r in RECORDS}
    assert kinds == {
        ("chat", False),
        ("chat", True),
        ("embeddings", False),
        ("responses", False),
        ("responses", True),
    }
    assert len(RECORDS) == 433


@pytest.mark.parametrize("via", ["v1-path", "classic-path"])
def test_reported_usage_is_reproduced_exactly(via: str) -> None:
    sink, dead = MemorySink(), MemoryDeadLetters()
    processor = Processor(load_settings(), sink, dead)
    messages = []
    for i, record in enumerate(RECORDS):
        overrides = {}
        if via == "classic-path":
            path = {"chat": "chat/completions"}.get(record["endpoint"], record["endpoint"])
            overrides["url"] = (
                f"https://gw.contoso.com/openai/deployments/my-deployment/{path}"
                "?api-version=2024-10-21"
            )
        messages.append(
            RawMessage(v1_message(record, f"rec-{i}", model=False, usage=False, **overrides))
        )
    report = processor.process_batch(messages)

    assert (
        report.summary()
        == f"received={len(RECORDS)} emitted={len(RECORDS)} skipped=0 dead_lettered=0"
    )
    recomputed = []
    for record, event in zip(RECORDS, sink.events, strict=True):
        tokens = {k: v for k, v in event.measurements.items() if k.endswith("Tokens")}
        assert tokens == _reported(record["usage"]), record["file"]
        if record["usage"]["total_tokens"] != tokens["TotalTokens"]:
            assert event.dimensions["UsageAdjusted"] == "total-recomputed"
            recomputed.append((record["model"], record["usage"]["total_tokens"]))
        else:
            assert "UsageAdjusted" not in event.dimensions, record["file"]
        assert event.dimensions["TokenSource"] == "usage"
        assert event.dimensions["Truncated"] == "false"
        if record["model"]:
            assert event.dimensions["Model"] == record["model"]
        assert event.dimensions["PromptTokens"] == str(int(event.measurements["PromptTokens"]))
    assert recomputed == [
        ("gemini-2.5-pro-preview-05-06", 109),
        ("gemini-2.5-pro-preview-05-06", 100),
    ]
