"""The accuracy command on the recorded corpus: usage stripping, categories, the table's figures."""

from __future__ import annotations

import io
import json
from typing import Any

from chargeback.tools.accuracy import category, distinct, main, measurable, measure, strip_usage
from chargeback.tools.cli import main as cli_main
from tests.support.messages import HELD_OUT, RECORDS


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
    assert [category(records[i]) for i in (5, 11, 16, 256, 246, 257, 286)] == [
        "chat with tools/schema",
        "text chat",
        "embeddings",
        "images",
        "files and audio",
        "Responses API",
        "chat with tools/schema",  # a json_schema response format: structured output
    ]


def test_measure_on_the_corpus(records: list[dict[str, Any]]) -> None:
    rows = measure(records)
    assert len(rows) == 433
    by = {name: [r for r in rows if r.category == name] for name in {r.category for r in rows}}
    # every call is emitted: the 79 of models with no OpenAI tokenizer (Mistral, Llama, Gemini,
    # Qwen, made-up names) approximately, none dead-lettered for want of a tokenizer
    assert "not estimated" not in by and len(by["other families"]) == 79
    assert all("tokenizer-approximate" in r.notes.split(",") for r in by["other families"])
    text = by["text chat"]
    assert sum(r.prompt_error == 0 for r in text) == 47 and len(text) == 48  # 97.9% exact
    tools = by["chat with tools/schema"]
    # 57 of 57 within 2 since the response-format rendering (harmony layout, cookbook #2140): 55 before
    assert sum(abs(r.prompt_error or 0) <= 2 for r in tools) == 57 and len(tools) == 57
    assert all(r.prompt_error == 0 for r in by["embeddings"])


def test_table_last_line(capsys: Any) -> None:
    out = io.StringIO()
    assert main(RECORDS, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("373 distinct calls (60 repeats of the same call dropped)")
    assert lines[-1].startswith(
        "accuracy: measured=373 estimated=309 not_estimable=0 other_families=64 prompt_exact="
    )
    fields = dict(item.split("=") for item in lines[-1].split()[1:])
    assert 0 < float(fields["prompt_exact"]) < 1 and 0 < float(fields["completion_within1"]) < 1
    assert cli_main(["accuracy", str(RECORDS)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == lines[-1]


def test_sides_the_bodies_cannot_show_get_their_own_rows(records: list[dict[str, Any]]) -> None:
    rows = {m.model + str(i): m for i, m in enumerate(measure(records))}
    by_reason: dict[str, int] = {}
    for row in rows.values():
        for side in ("prompt", "completion"):
            reason = row.reason(side)
            if row.category != "not estimable" and reason:
                by_reason[f"{side}:{reason}"] = by_reason.get(f"{side}:{reason}", 0) + 1
    assert by_reason["prompt:context-invisible"] == 17  # previous_response_id, compaction, ...
    assert by_reason["prompt:server-tools"] == 27  # web_search, file_search, MCP, code interpreter
    assert by_reason["completion:reasoning-remainder-unseen"] == 90
    assert by_reason["completion:usage-zero"] == 1  # record 398 reports 0 tokens for two calls
    # records 345-347, 448: hand-written bodies (status "complete", 10 in / 1 out for any text)
    assert by_reason["completion:usage-not-api"] == by_reason["prompt:usage-not-api"] == 4
    # record 429, reasoning mode "pro": 1549 input tokens for an 18-token question
    assert by_reason["completion:reasoning-mode"] == by_reason["prompt:reasoning-mode"] == 1
    hidden = [r for r in rows.values() if r.reason("completion") == "reasoning-remainder-unseen"]
    # Evidence for the rule: without built-in tools, the visible reply is never overestimated
    # and never short by more than 63 (reasoning_tokens come in steps of 64).
    plain = [r for r in hidden if "server-tool" not in r.notes]
    assert all(-63 <= (r.completion_error or 0) <= 0 for r in plain)


def test_last_line_lists_visible_counts_and_exclusions() -> None:
    out = io.StringIO()
    main(RECORDS, out)
    text = out.getvalue()
    assert "Categories count only sides whose content the bodies show" in text
    fields = dict(item.split("=") for item in text.splitlines()[-1].split()[1:])
    assert int(fields["prompt_visible"]) + sum(
        int(v) for k, v in fields.items() if k.startswith("excluded[prompt:")
    ) == int(fields["estimated"])
    assert float(fields["completion_within1"]) >= 0.95


def test_a_call_recorded_many_times_counts_once(records: list[dict[str, Any]]) -> None:
    calls = distinct(r for r in records if measurable(r))
    assert len(calls) == 373  # of 433 measurable records: cassettes replay the same call
    # the same request answered twice with different usage is two calls
    twice = [r for r in calls if r["request"] == calls[0]["request"]]
    assert all(r["usage"] == twice[0]["usage"] for r in twice[:1])


def test_cross_validated_table_per_file_and_held_out_source() -> None:
    out = io.StringIO()
    assert main([RECORDS, HELD_OUT], out) == 0
    text = out.getvalue().splitlines()
    assert "recorded-exchanges.jsonl (development: rules fitted here)" in text
    assert "held-out-sample.jsonl (held out)" in text
    sources = {json.loads(line)["src"] for line in HELD_OUT.read_text().splitlines()}
    assert all(f"held out: {source}" in text for source in sources)
    fields = dict(item.split("=") for item in text[-1].split()[1:])
    assert int(fields["heldout"]) == len(HELD_OUT.read_text().splitlines())
    assert 0 <= float(fields["heldout_prompt_exact"]) <= 1


def test_an_unreadable_file_is_one_line(tmp_path: Any, capsys: Any) -> None:
    # the second of two files is missing: the command says so in one line (a UserError, as
    # every command's mistake), with nothing printed of the first
    missing = tmp_path / "missing.jsonl"
    assert cli_main(["accuracy", str(RECORDS), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "missing.jsonl" in captured.err
    assert not captured.out


def test_a_recording_whose_images_were_replaced_is_set_apart() -> None:
    # openai-dotnet's test proxy stored the image of this image-edit session as a 1×1 PNG; the
    # API billed 25,524 input tokens for it: the body recorded is not the call's
    lines = HELD_OUT.read_text().splitlines()
    record = next(
        json.loads(line) for line in lines if "GenerateImageEditWorks(UsingFilePath)" in line
    )
    (row,) = measure([record])
    assert row.reported_prompt == 25524 and (row.prompt_error or 0) < -17000
    assert row.reason("prompt") == "recording-edited" and row.reason("completion") is None


def test_responses_calls_of_the_api_first_weeks_are_set_apart() -> None:
    # pydantic/logfire, gpt-4o, 2025-03-10: billed 18 more than every later recording of such
    # a call; the estimate is right for the API as it has billed since April 2025
    lines = HELD_OUT.read_text().splitlines()
    record = next(json.loads(line) for line in lines if "test_input_guardrails.yaml" in line)
    (row,) = measure([record])
    assert (row.reported_prompt, row.prompt_error) == (29, -18)
    assert row.reason("prompt") == "service-changed" and row.reason("completion") is None
