"""The Kusto parser harness works, and it can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.kusto_parser import (
    KustoHarnessError,
    check_kql,
    ensure_installed,
    format_diagnostics,
    load_schema,
)

# The two queries of the Azure OpenAI chargeback article, verbatim; <SP4> stands for the four
# trailing spaces two lines have there (kept out of the source so linters do not strip them).
ARTICLE_PER_CLIENT = """customEvents
| where name contains "Azure OpenAI Tokens"
| extend tokenData = parse_json(customDimensions)
| where tokenData.AppKey contains "your-client-key"
| project<SP4>
    Timestamp = tokenData.Timestamp,
    Stream = tokenData.Stream,
    ApiOperation = tokenData.ApiOperation,<SP4>
    PromptTokens = tokenData.PromptTokens,
    CompletionTokens = tokenData.CompletionTokens,
    TotalTokens = tokenData.TotalTokens
""".replace("<SP4>", "    ")

ARTICLE_SUMMARY = """customEvents
| where name contains "Azure OpenAI Tokens"
| extend tokenData = parse_json(customDimensions)
| extend
    AppKey = tokenData.AppKey,
    PromptTokens = tokenData.PromptTokens,
    CompletionTokens = tokenData.CompletionTokens,
    TotalTokens = tokenData.TotalTokens
| summarize PromptTokens = sum(toint(PromptTokens)) , CompletionTokens = sum(toint(CompletionTokens)), TotalTokens = sum(toint(TotalTokens)) by tostring(AppKey)
| project strcat(substring(tostring(AppKey),0,8), "XXXX"), PromptTokens, CompletionTokens, TotalTokens
"""

CLEAN = {
    "valid": "customEvents | where timestamp > ago(1d) and itemCount > 0 | project timestamp, name, cloud_RoleName",
    "parse_json_property": 'customEvents | extend d = parse_json(customDimensions) | where d.AppKey == "k" '
    "| project AppKey = tostring(d.AppKey), Tokens = toint(d.TotalTokens)",
    "query_parameters": "declare query_parameters(ptuMonthlyCost:real = 1000.0);\n"
    "customEvents | summarize n = count() | extend cost = ptuMonthlyCost * n",
    "let_statements": "let window = 30d;\nlet ev = customEvents | where timestamp > ago(window);\n"
    "ev | summarize count() by bin(timestamp, 1d), name",
    "article_per_client": ARTICLE_PER_CLIENT,
    "article_summary": ARTICLE_SUMMARY,
}

BROKEN = {
    "syntax_error": "customEvents | where (name == 'x' | take 1",
    "unknown_column": "customEvents | project nosuchcolumn",
    "unknown_table": "customEventz | take 1",
    "undeclared_parameter": "customEvents | extend cost = ptuMonthlyCost * 2",
    "unknown_function": "customEvents | extend x = no_such_function(name)",
}


@pytest.fixture(scope="module")
def results() -> dict[str, list[dict[str, Any]]]:
    # Every query of this module in ONE node process.
    return check_kql({**CLEAN, **BROKEN})


def errors(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in diagnostics if d["severity"] == "Error"]


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_query_has_no_diagnostics(
    name: str, results: dict[str, list[dict[str, Any]]]
) -> None:
    assert results[name] == [], format_diagnostics(CLEAN[name], results[name])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_query_has_an_error(name: str, results: dict[str, list[dict[str, Any]]]) -> None:
    assert errors(results[name]), f"{name}: expected an error, got {results[name]}"


def test_semantic_errors_point_at_the_name(
    results: dict[str, list[dict[str, Any]]],
) -> None:
    (col,) = errors(results["unknown_column"])
    text = BROKEN["unknown_column"]
    assert text[col["start"] : col["start"] + col["length"]] == "nosuchcolumn"
    assert col["code"] == "KS142"
    (table,) = errors(results["unknown_table"])
    assert table["start"] == 0 and table["length"] == len("customEventz")
    assert "customEventz" in table["message"]


def test_syntax_error_is_reported(results: dict[str, list[dict[str, Any]]]) -> None:
    messages = " ".join(d["message"] for d in errors(results["syntax_error"]))
    assert "Expected: )" in messages


def test_inline_schema_replaces_the_default() -> None:
    schema = {"table": "T", "columns": [{"name": "a", "type": "long"}]}
    out = check_kql({"ok": "T | where a > 1", "bad": "customEvents | take 1"}, schema=schema)
    assert out["ok"] == []
    assert errors(out["bad"])


def test_schema_file_is_application_insights_custom_events() -> None:
    table, columns = load_schema()
    assert table == "customEvents"
    assert columns[:4] == [
        ("timestamp", "datetime"),
        ("name", "string"),
        ("itemType", "string"),
        ("customDimensions", "dynamic"),
    ]
    assert ("itemCount", "int") in columns and (
        "customMeasurements",
        "dynamic",
    ) in columns
    assert len(columns) == len({c for c, _ in columns}) == 29


def test_missing_install_fails_with_npm_ci_hint(tmp_path: Path) -> None:
    with pytest.raises(KustoHarnessError, match=r"npm ci --prefix tests/kusto"):
        ensure_installed(tmp_path / "absent")
