"""Issue 17, point 3: a call of a model with no OpenAI tokenizer is billed, never dead-lettered
for want of one: estimated with o200k_base times its family's factor and flagged, or counted
with the tokenizer the operator names; dead-lettered only when the operator marks the model so."""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from chargeback.bodies import parse_exchange
from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.errors import ConfigurationError
from chargeback.gateway import parse_gateway_message
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings
from chargeback.tokens import count_text, estimate, get_encoding
from chargeback.tokens.families import FAMILIES, Tokenizers, family_of
from chargeback.tools.accuracy import gateway_message
from tests.support.accounting import assert_accounted
from tests.support.messages import HELD_OUT

O200K = get_encoding("o200k_base")
CL100K = get_encoding("cl100k_base")

# Development records (tests/data) of other providers' OpenAI-compatible endpoints.
MISTRAL = 68  # mistral-medium-latest: one user message, one tool; 61 billed
LLAMA = 66  # meta-llama/llama-4-maverick (Groq): the same request; 708 billed
QWEN = 275  # qwen-3-coder-480b (Cerebras)
MISTRAL_LONG = 69  # mistral-medium-latest: a conversation of five messages, five tools


def _replay(settings: Settings, record: dict[str, Any]) -> tuple[Any, MemorySink, Any]:
    """The recorded call through the Function's path, its usage stripped (must be estimated)."""
    sink, dead = MemorySink(), MemoryDeadLetters()
    raw = RawMessage(gateway_message(record, "fam-1"), "0", 0)
    report = Processor(settings, sink, dead).process_batch([raw])
    assert_accounted(report, 1)
    return report, sink, dead


def _event(settings: Settings, record: dict[str, Any]) -> ChargebackEvent:
    report, sink, _ = _replay(settings, record)
    assert [o.kind for o in report.outcomes] == ["emitted"]
    (event,) = sink.events
    return event


def _notes(event: ChargebackEvent) -> list[str]:
    return (event.dimensions.get("Estimate") or "").split(",")


def test_a_call_of_another_family_is_billed_approximately_and_says_so(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    # Before issue 17 this call was dead-lettered as unknown-model and never billed.
    event = _event(settings, records[MISTRAL])
    assert _notes(event) == ["tokenizer-approximate"]
    assert event.dimensions["TokenSource"] == "estimated"
    # o200k_base's count (the OpenAI chat layout) times Mistral's factor, 1.00: 46; the API
    # billed 61 (Mistral's tool prompt, which the flag stands for)
    assert (event.measurements["PromptTokens"], event.measurements["CompletionTokens"]) == (46, 12)
    assert event.dimensions["Priced"] == "false"  # the price table has no Mistral model


def test_every_other_family_of_the_corpus_is_emitted(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    others = [
        r
        for r in records
        if r["status"] == 200
        and r["usage"]
        and any(name in str(r["model"]) for name in ("llama", "mistral", "qwen", "gemini"))
    ]
    assert len(others) == 79
    sink, dead = MemorySink(), MemoryDeadLetters()
    raws = [RawMessage(gateway_message(r, f"o-{i}"), "0", i) for i, r in enumerate(others)]
    report = Processor(settings, sink, dead).process_batch(raws)
    assert report.emitted == 79 and not dead.letters
    assert all("tokenizer-approximate" in _notes(e) for e in sink.events)


def test_the_family_factor_scales_the_count(
    settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = records[QWEN]
    assert family_of(record["model"]).factor == 1.04
    event = _event(settings, record)
    raw = RawMessage(gateway_message(record, "q"))
    exchange = parse_exchange(parse_gateway_message(raw, max_bytes=10**7))
    plain = estimate(exchange, "no-family-model")  # o200k_base, factor 1
    assert "tokenizer-approximate" in plain.notes
    assert event.measurements["PromptTokens"] == round(plain.prompt * 1.04) != plain.prompt


def test_a_model_the_operator_marks_is_dead_lettered(records: list[dict[str, Any]]) -> None:
    settings = load_settings(unestimated_models="mistral, command-r")
    report, sink, dead = _replay(settings, records[MISTRAL])
    assert [(o.kind, o.reason) for o in report.outcomes] == [("dead-lettered", "unknown-model")]
    assert "CHARGEBACK_UNESTIMATED_MODELS" in dead.letters[0].detail and not sink.events
    # the other families are billed as before
    assert _event(settings, records[LLAMA]).measurements["PromptTokens"] == 46


def _cl100k_file(folder: Path) -> Path:
    """cl100k_base's ranks as a tiktoken file of the operator's (the shipped copy, unpacked)."""
    data = resources.files("chargeback").joinpath("data/cl100k_base.tiktoken.gz").read_bytes()
    path = folder / "family.tiktoken"
    path.write_bytes(gzip.decompress(data))
    return path


def test_a_tiktoken_file_named_by_the_operator_counts_the_family(
    tmp_path: Path, settings: Settings, records: list[dict[str, Any]]
) -> None:
    ranks = _cl100k_file(tmp_path)
    configured = load_settings(
        tokenizers=json.dumps({"mistral": {"path": str(ranks), "split": "cl100k_base"}})
    )
    record = records[MISTRAL_LONG]
    event = _event(configured, record)
    assert _notes(event) == ["template-approximate"]  # the text exact, the chat layout OpenAI's
    # as our own cl100k_base counts for a model that uses it (the same default chat layout)
    gpt4 = _event(settings, {**record, "model": "gpt-4-0613"})
    assert event.measurements["PromptTokens"] == gpt4.measurements["PromptTokens"]
    # and on text where the two encodings part, the file's ranks count, not o200k_base's
    encoding = Tokenizers.from_settings(configured).for_model("mistral-large-2411").encoding
    texts = (json.dumps(r["request"], ensure_ascii=False) for r in records)
    text = next(t for t in texts if count_text(t, CL100K) != count_text(t, O200K))
    assert count_text(text, encoding) == count_text(text, CL100K)


def test_a_tokenizer_json_named_by_the_operator_counts_the_family(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    # A word-level tokenizer.json made with the tokenizers package: one token per word.
    words = {"[UNK]": 0}
    tokenizer = Tokenizer(models.WordLevel(vocab=words, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    configured = load_settings(tokenizers=json.dumps({"meta-llama": str(path)}))
    record = records[LLAMA]
    event = _event(configured, record)
    assert _notes(event) == ["template-approximate"]
    # every word and punctuation mark one token: the user's question alone shows the difference
    text = record["request"]["messages"][0]["content"]
    assert len(tokenizer.encode(text).ids) != count_text(text, O200K)
    assert (
        event.measurements["PromptTokens"]
        != _event(load_settings(), record).measurements["PromptTokens"]
    )


def _word_level(folder: Path, split_punctuation: bool) -> Path:
    """A word-level ``tokenizer.json`` (every word unknown, so one token each) in ``folder``:
    splitting punctuation off words, or only at whitespace."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = (
        pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    )
    folder.mkdir()
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_two_operator_files_of_one_name_keep_their_counts_apart(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    # The token-count cache keys a count by its encoding's name: two families' files, both
    # called tokenizer.json, must not answer for each other within one processor.
    configured = load_settings(
        tokenizers=json.dumps(
            {
                "meta-llama": str(_word_level(tmp_path / "llama", split_punctuation=True)),
                "mistral": str(_word_level(tmp_path / "mistral", split_punctuation=False)),
            }
        )
    )
    alone = [
        _event(configured, records[index]).measurements["PromptTokens"]
        for index in (LLAMA, MISTRAL)
    ]
    assert alone[0] != alone[1]  # the same request: only the tokenizers differ
    sink = MemorySink()
    raws = [RawMessage(gateway_message(records[i], f"t-{i}"), "0", i) for i in (LLAMA, MISTRAL)]
    Processor(configured, sink, MemoryDeadLetters()).process_batch(raws)
    assert [event.measurements["PromptTokens"] for event in sink.events] == alone


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{oops", "CHARGEBACK_TOKENIZERS"),
        ('{"llama": 3}', "CHARGEBACK_TOKENIZERS"),
        ('{"llama": "/no/such/tokenizer.json"}', "CHARGEBACK_TOKENIZERS"),
    ],
)
def test_a_bad_tokenizer_setting_fails_fast_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("CHARGEBACK_TOKENIZERS", value)
    with pytest.raises(ConfigurationError, match=says):
        Processor(load_settings(), MemorySink(), MemoryDeadLetters())


def test_families_table_rows_each_cite_their_measurement() -> None:
    assert all(family.measured for _, family in FAMILIES)
    assert family_of("Meta-Llama-3.1-8B-Instruct").name == "llama"
    assert family_of("mistralai/Mistral-Large-2411").name == "mistral"
    assert family_of("DeepSeek-R1").name == "deepseek"
    assert family_of("AZURE_DEPLOYMENT-2025-04-14").name == "unknown"


def test_a_model_reported_under_a_name_no_table_knows_counts_as_the_request_names_it(
    settings: Settings,
) -> None:
    # envoyproxy: babbage-002 answers as "babbage:2023-07-21-v2" (dead-lettered before): the
    # request's model names the encoding, cl100k_base, and the count is exact
    lines = HELD_OUT.read_text().splitlines()
    record = next(json.loads(line) for line in lines if "completion-basic.yaml" in line)
    assert record["model"] == "babbage:2023-07-21-v2"
    event = _event(settings, record)
    assert (event.measurements["PromptTokens"], event.measurements["CompletionTokens"]) == (31, 25)
    assert (record["usage"]["prompt_tokens"], record["usage"]["completion_tokens"]) == (31, 25)
    assert "tokenizer-approximate" not in _notes(event)
    assert event.dimensions["Model"] == "babbage:2023-07-21-v2"  # billed as reported
