"""The accuracy command on the recorded corpus: usage stripping, categories, the table's figures."""

from __future__ import annotations

import io
import json
from typing import Any

from messages import RECORDS

from chargeback.accuracy import category, main, measure, strip_usage
from chargeback.cli import main as cli_main


def test_strip_usage_drops_json_usage_and_stream_usage_chunk(records: list[dict[str, Any]]) -> None:
    body = json.loads(strip_usage(records[296]["response_text"], stream=False))
    assert "usage" not in body and body["choices"]
    streamed = next(r for r in records if r["stream"] and r["endpoint"] == "chat" and r["usage"])
    text = strip_usage(streamed["response_text"], stream=True)
    assert '"prompt_tokens"' in streamed["response_text"]
    assert '"prompt_tokens"' not in text and "[DONE]" in text


def test_strip_usage_keeps_responses_stream_but_its_usage(records: list[dict[str, Any]]) -> None:
    streamed = next(
        r for r in records if r["stream"] and r["endpoint"] == "responses" and r["usage"]
    )
    text = strip_usage(streamed["response_text"], stream=True)
    assert '"input_tokens"' not in text and "response.completed" in text


def test_categories(records: list[dict[str, Any]]) -> None:
    assert [category(records[i]) for i in (5, 11, 16, 256, 246, 257)] == [
        "chat with tools",
        "text chat",
        "embeddings",
        "images",
        "files and audio",
        "Responses API",
    ]


def test_measure_on_the_corpus(records: list[dict[str, Any]]) -> None:
    rows = measure(records)
    assert len(rows) == 433
    by = {name: [r for r in rows if r.category == name] for name in {r.category for r in rows}}
    assert len(by["not estimable"]) == 79
    text = by["text chat"]
    assert sum(r.prompt_error == 0 for r in text) == 47 and len(text) == 48  # 97.9% exact
    tools = by["chat with tools"]
    assert sum(abs(r.prompt_error or 0) <= 2 for r in tools) == 55 and len(tools) == 57
    assert all(r.prompt_error == 0 for r in by["embeddings"])


def test_table_last_line(capsys: Any) -> None:
    out = io.StringIO()
    assert main(RECORDS, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith(
        "accuracy: measured=433 estimated=354 not_estimable=79 prompt_exact="
    )
    fields = dict(item.split("=") for item in lines[-1].split()[1:])
    assert 0 < float(fields["prompt_exact"]) < 1 and 0 < float(fields["completion_within1"]) < 1
    assert cli_main(["accuracy", str(RECORDS)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == lines[-1]
