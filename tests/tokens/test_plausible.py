"""The usage rules (`chargeback.tokens.plausible`) and the ceiling table they read
(`chargeback.tokens.ceilings`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chargeback.errors import ImplausibleUsage
from chargeback.tokens import TokenCounts, plausible_counts, usage_from_api
from chargeback.tokens.ceilings import (
    CEILINGS,
    GLOBAL_CEILING,
    RESPONSES_TURNS,
    ceiling_for,
)
from chargeback.tokens.plausible import choices_of
from tests.support.messages import load_records

ROOT = Path(__file__).resolve().parents[2]


def test_usual_counts_pass_unchanged() -> None:
    counts = TokenCounts(23, 11, 34, cached=8, reasoning=4)
    assert plausible_counts(counts, "gpt-4o-2024-08-06") is counts


@pytest.mark.parametrize(
    ("counts", "expected", "flags"),
    [
        (TokenCounts(12, 5, 2**52), TokenCounts(12, 5, 17), ("total-recomputed",)),
        (TokenCounts(12, 5, 0), TokenCounts(12, 5, 17), ("total-recomputed",)),
        (
            TokenCounts(12, 5, 17, cached=4096),
            TokenCounts(12, 5, 17, cached=12),
            ("cached-clamped",),
        ),
        (
            TokenCounts(12, 5, 17, reasoning=10**12),
            TokenCounts(12, 5, 17, reasoning=5),
            ("reasoning-clamped",),
        ),
        (
            TokenCounts(12, 5, 99, cached=13, reasoning=6),
            TokenCounts(12, 5, 17, cached=12, reasoning=5),
            ("total-recomputed", "cached-clamped", "reasoning-clamped"),
        ),
    ],
)
def test_inconsistent_counts_are_corrected_and_flagged(
    counts: TokenCounts, expected: TokenCounts, flags: tuple[str, ...]
) -> None:
    assert plausible_counts(counts, "gpt-4o-mini") == expected._replace(adjusted=flags)


def test_a_reader_flag_is_kept_beside_the_rules_flags() -> None:
    counts = TokenCounts(12, 5, 18, adjusted=("cached-unreadable",))
    assert plausible_counts(counts, "gpt-4o").adjusted == ("cached-unreadable", "total-recomputed")


@pytest.mark.parametrize(
    ("counts", "model"),
    [
        (TokenCounts(10**15, 0, 10**15), "gpt-4o"),  # the 2.5 billion call
        (TokenCounts(128_000, 16_385, 144_385), "gpt-4o-2024-08-06"),
        (TokenCounts(300_001, 0, 300_001), "text-embedding-3-small"),
        (TokenCounts(2**53, 1, 2**53 + 1), None),
        (TokenCounts(10**400, 0, 0), "gpt-4o"),
        (TokenCounts(GLOBAL_CEILING, 1, 0), "a-model-nobody-knows"),
        (TokenCounts(-1, 5, 4), "gpt-4o"),
    ],
)
def test_counts_above_the_ceiling_are_implausible(counts: TokenCounts, model: str | None) -> None:
    with pytest.raises(ImplausibleUsage) as caught:
        plausible_counts(counts, model)
    assert caught.value.reason == "implausible-usage"


def test_the_ceiling_is_context_plus_output_and_its_edge_passes() -> None:
    edge = TokenCounts(128_000, 16_384, 144_384)
    assert plausible_counts(edge, "gpt-4o-mini-2024-07-18") is edge
    assert "above the ceiling of 144384 for model 'gpt-4o'" in _refusal(
        TokenCounts(128_001, 16_384, 144_385), "gpt-4o"
    )


def _refusal(counts: TokenCounts, model: str | None, **kw: Any) -> str:
    with pytest.raises(ImplausibleUsage) as caught:
        plausible_counts(counts, model, **kw)
    return str(caught.value)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-5.4-2026-03-05", "gpt-5.4"),
        ("gpt-5.4-mini-2026-03-17", "gpt-5.4-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
        ("GPT-5-Chat", "gpt-5-chat"),
    ],
)
def test_a_dated_model_name_gets_its_familys_ceiling(model: str, family: str) -> None:
    (row,) = [row for row in CEILINGS if row.family == family]
    assert ceiling_for(model) == row.tokens


@pytest.mark.parametrize("model", [None, "", "mistral-medium-latest", "gpt-4o-search-preview"])
def test_an_unknown_model_gets_the_global_ceiling(model: str | None) -> None:
    assert ceiling_for(model) == GLOBAL_CEILING
    assert max(row.tokens for row in CEILINGS) <= GLOBAL_CEILING


def test_a_responses_call_may_hold_several_turns_and_a_request_several_completions() -> None:
    assert ceiling_for("gpt-4o-mini", "responses") == RESPONSES_TURNS * 144_384
    assert ceiling_for(None, "responses") == RESPONSES_TURNS * GLOBAL_CEILING
    # n=4 completions of up to 16,384 tokens each on one 128,000-token prompt.
    assert ceiling_for("gpt-4o", "chat.completion", choices=4) == 128_000 + 4 * 16_384
    assert ceiling_for("gpt-4o", choices=10**9) == 128_000 + 128 * 16_384  # n is at most 128
    assert ceiling_for("gpt-4o", choices=0) == 144_384


def test_every_row_cites_its_source() -> None:
    for row in CEILINGS:
        assert re.fullmatch(r"https://learn\.microsoft\.com/\S+", row.source), row
        assert row.context > 0 and row.output >= 0, row
    assert len({row.family for row in CEILINGS}) == len(CEILINGS)


def test_the_table_knows_the_priced_models_it_has_a_source_for() -> None:
    """Every model of the shipped price table has a row (``gpt-4o-2024-05-13`` is gpt-4o),
    except those the models page does not list (retired ones, the gpt-35-turbo versions, and
    gpt-5.2-pro and o3-deep-research, which it leaves out): they get the global ceiling."""
    table = json.loads((ROOT / "chargeback" / "data" / "prices.json").read_text())
    priced = {model for kind in table["deploymentTypes"].values() for model in kind["models"]}
    unknown = {model for model in priced if ceiling_for(model) == GLOBAL_CEILING}
    assert unknown == {
        "gpt-4.5-preview",
        "gpt-4-32k",
        "gpt-35-turbo-instruct",
        "o1-pro",
        "gpt-5.2-pro",
        "o3-deep-research",
        *(f"gpt-35-turbo{v}" for v in ("", "-0125", "-0301", "-0613", "-1106", "-16k")),
    }


def test_no_recorded_call_is_implausible() -> None:
    """Every call the recordings hold, with the usage the API reported, passes: the ceilings
    refuse broken numbers, not real calls (the largest: a code-interpreter Responses call on
    gpt-4o-mini with 151,629 input tokens is in recorded-exchanges-more.jsonl, which the repo
    does not ship; its 152,154 tokens are under 8 x 144,384)."""
    checked = 0
    for record in load_records():
        counts = usage_from_api(record.get("usage"))
        if counts is None:
            continue
        operation = "responses" if record["endpoint"] == "responses" else None
        plausible_counts(counts, record.get("model"), operation)
        checked += 1
    assert checked == 433
    assert ceiling_for("gpt-4o-mini-2024-07-18", "responses") > 152_154


def test_a_request_for_several_completions_widens_the_ceiling() -> None:
    four = TokenCounts(128_000, 4 * 16_384, 128_000 + 4 * 16_384)
    assert plausible_counts(four, "gpt-4o", "chat.completion", {"n": 4}) is four
    assert plausible_counts(four, "gpt-4o", "text_completion", {"n": 1, "best_of": 4}) is four
    with pytest.raises(ImplausibleUsage):
        plausible_counts(four, "gpt-4o", "chat.completion", {"n": 3})
    with pytest.raises(ImplausibleUsage):
        plausible_counts(four, "gpt-4o", "chat.completion", None)


@pytest.mark.parametrize(
    ("request_body", "choices"),
    [
        (None, 1),
        ({}, 1),
        ({"n": 3}, 3),
        ({"n": 2, "best_of": 5}, 5),
        ({"n": True}, 1),
        ({"n": "4"}, 1),
        ({"n": -2}, 1),
    ],
)
def test_choices_of_a_request(request_body: dict[str, Any] | None, choices: int) -> None:
    assert choices_of(request_body) == choices
