"""The query packs (queries/*.kql for Application Insights, queries/workspace/*.kql for the Log
Analytics workspace, both generated from queries/src by queries/make_queries.py): every query
parses cleanly with the real Kusto parser against its own schema, runs under duckdb-kql with exact
results on the fixed calls of tests/chargeback_events.py, written through the real path
(Processor, exporter, local store), and the two packs give identical results."""

from __future__ import annotations

import hashlib
import importlib.util
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chargeback.local.kql import run_kql
from tests.support.kusto_parser import (
    APPEVENTS_SCHEMA_PATH,
    SCHEMA_PATH,
    check_kql,
    format_diagnostics,
)

QUERIES = Path(__file__).resolve().parents[2] / "queries"
WORKSPACE = QUERIES / "workspace"
OCT = datetime(2026, 10, 1)
NOV = datetime(2026, 11, 1)


def rows(db: Path, name: str, pack: Path = QUERIES, **parameters: Any) -> list[dict[str, Any]]:
    result = run_kql(db, (pack / name).read_text(encoding="utf-8"), parameters or None)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_every_query_of_each_pack_parses_cleanly_against_its_own_schema() -> None:
    for pack, schema in ((QUERIES, SCHEMA_PATH), (WORKSPACE, APPEVENTS_SCHEMA_PATH)):
        texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(pack.glob("*.kql"))}
        assert len(texts) == 13, pack
        problems = {
            name: format_diagnostics(texts[name], found)
            for name, found in check_kql(texts, schema=schema).items()
            if found
        }
        assert problems == {}, pack


def test_a_pack_fails_against_the_other_schema() -> None:
    # The check can fail: customEvents is no table of the workspace, AppEvents none of App Insights.
    ai = (QUERIES / "tokens-by-business-unit.kql").read_text()
    ws = (WORKSPACE / "tokens-by-business-unit.kql").read_text()
    found = check_kql({"ai": ai}, schema=APPEVENTS_SCHEMA_PATH)["ai"]
    assert any("customEvents" in d["message"] for d in found)
    assert check_kql({"ws": ws}, schema=SCHEMA_PATH)["ws"]


def test_the_articles_queries_are_unchanged() -> None:
    digests = {
        name: hashlib.sha256((QUERIES / name).read_bytes()).hexdigest()
        for name in ("article-usage-by-key.kql", "article-usage-for-key.kql")
    }
    assert digests == {
        "article-usage-by-key.kql": "3b3878745fbe686e85f3ffc6ec8dfae30a38085805fd5c7b13f6c9691e6f716a",
        "article-usage-for-key.kql": "62c5694d916f8b72b4479c603cbf261a5eaf3f6a45eb7c157e309c8b088b8216",
    }


def test_every_new_query_starts_from_the_one_definition_of_a_call() -> None:
    calls = (QUERIES / "src" / "prelude" / "calls.kql").read_text(encoding="utf-8")
    assert "by RequestId" in calls and "itemCount" in calls
    for pack in (QUERIES, WORKSPACE):
        for path in pack.glob("*.kql"):
            if path.name.startswith("article-"):
                continue
            text = path.read_text(encoding="utf-8")
            assert calls in text, path
            assert "ReportMonth:string" in text, path


def test_the_packs_are_up_to_date_with_their_source() -> None:
    spec = importlib.util.spec_from_file_location("make_queries", QUERIES / "make_queries.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert len(rendered) == 26
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path}: run `python queries/make_queries.py`"
        )


def test_the_workspace_carries_the_articles_with_only_the_adapter_added() -> None:
    adapter = (QUERIES / "src" / "prelude" / "workspace.kql").read_text(encoding="utf-8")
    adapter = adapter.replace("    | where TimeGenerated >= Since\n", "")
    for name in ("article-usage-by-key.kql", "article-usage-for-key.kql"):
        article = (QUERIES / name).read_text(encoding="utf-8")
        body = article[article.index("customEvents\n") :]
        workspace = (WORKSPACE / name).read_text(encoding="utf-8")
        assert workspace.endswith(adapter + body), name


def test_the_store_holds_the_duplicate_that_the_queries_remove(store: Path) -> None:
    result = run_kql(
        store, 'customEvents | where tostring(customDimensions.RequestId) == "req-0002" | count'
    )
    assert result.rows == [(2,)]


def test_cost_by_business_unit(store: Path) -> None:
    got = [
        (
            r["Month"],
            r["BusinessUnit"],
            r["CostCenter"],
            r["Currency"],
            r["Calls"],
            r["PromptTokens"],
            r["CompletionTokens"],
            r["TotalTokens"],
            r["ProvisionedTokens"],
            r["PaygoCost"],
            r["PtuCost"],
            r["Cost"],
            r["UnpricedCalls"],
        )
        for r in rows(store, "cost-by-business-unit.kql")
    ]
    # No PTU bill: provisioned calls cost nothing, and the cost is the pay-as-you-go cost.
    assert got == [
        (OCT, "finance", "CC-1001", "EUR", 1, 1000, 500, 1500, 0, 0.0056, 0.0, 0.0056, 0),
        (NOV, "marketing", "CC-2040", "EUR", 5, 1800, 3560, 5360, 0, 0.05227, 0.0, 0.05227, 1),
        (NOV, "finance", "CC-1001", "EUR", 2, 5000, 2000, 7000, 4000, 0.003, 0.0, 0.003, 0),
        (NOV, "unassigned", "unassigned", "EUR", 1, 100, 100, 200, 0, 0.001, 0.0, 0.001, 0),
        (NOV, "legal", "unassigned", "EUR", 1, 13, 4, 17, 0, 0.000058, 0.0, 0.000058, 0),
        (NOV, "research", "CC-3150", "EUR", 1, 1000, 1000, 2000, 2000, 0.0, 0.0, 0.0, 0),
    ]


def test_cost_by_business_unit_includes_the_ptu_share(store: Path) -> None:
    """Issue 12: the README said this query holds the PTU share while it gave provisioned calls
    cost 0 (finance 0.000660 in one demo table, 1,529.52 in the next). It takes the PTU bill
    now, and each business unit's figures are its applications' in
    chargeback-by-application.kql, added up."""
    ptu: dict[str, Any] = {"PtuMonthlyCost": 300.0, "ReportMonth": "2026-11"}
    got = [
        (r["BusinessUnit"], r["PaygoCost"], r["PtuCost"], r["Cost"], r["Currency"])
        for r in rows(store, "cost-by-business-unit.kql", **ptu)
    ]
    assert got == [
        ("finance", 0.003, 200.0, 200.003, "EUR"),
        ("research", 0.0, 100.0, 100.0, "EUR"),
        ("marketing", 0.05227, 0.0, 0.05227, "EUR"),
        ("unassigned", 0.001, 0.0, 0.001, "EUR"),
        ("legal", 0.000058, 0.0, 0.000058, "EUR"),
    ]
    units: dict[str, list[float]] = {}
    for r in rows(store, "chargeback-by-application.kql", **ptu):
        sums = units.setdefault(r["BusinessUnit"], [0, 0, 0.0, 0.0, 0.0])
        for i, name in enumerate(("Calls", "TotalTokens", "PaygoCost", "PtuCost", "Cost")):
            sums[i] += r[name]
    by_unit = {
        r["BusinessUnit"]: [r["Calls"], r["TotalTokens"], r["PaygoCost"], r["PtuCost"], r["Cost"]]
        for r in rows(store, "cost-by-business-unit.kql", **ptu)
    }
    assert by_unit.keys() == units.keys()
    for unit, sums in units.items():
        assert by_unit[unit] == pytest.approx(sums, abs=1e-6), unit


def test_an_unused_ptu_bill_joins_the_unassigned_business_unit(store: Path) -> None:
    # October: calls, none provisioned; the bill goes to business unit "unassigned".
    got = [
        (r["BusinessUnit"], r["Calls"], r["PtuCost"], r["Cost"])
        for r in rows(
            store, "cost-by-business-unit.kql", PtuMonthlyCost=50.0, ReportMonth="2026-10"
        )
    ]
    assert got == [("unassigned", 0, 50.0, 50.0), ("finance", 1, 0.0, 0.0056)]


def test_cost_by_month_per_business_unit_application_and_model(store: Path) -> None:
    got = [
        (
            r["Month"],
            r["BusinessUnit"],
            r["Application"],
            r["Model"],
            r["Billing"],
            r["Calls"],
            r["PromptTokens"],
            r["CachedTokens"],
            r["CompletionTokens"],
            r["TotalTokens"],
            r["Cost"],
            r["UnpricedCalls"],
        )
        for r in rows(store, "cost-by-month.kql")
    ]
    assert got == [
        (
            OCT,
            "finance",
            "Finance chatbot",
            "gpt-4o-2024-08-06",
            "paygo",
            1,
            1000,
            400,
            500,
            1500,
            0.0056,
            0,
        ),
        (
            NOV,
            "finance",
            "Finance chatbot",
            "gpt-4o-2024-08-06",
            "provisioned",
            1,
            3000,
            0,
            1000,
            4000,
            0.0,
            0,
        ),
        (
            NOV,
            "finance",
            "Finance chatbot",
            "gpt-4o-mini-2024-07-18",
            "paygo",
            1,
            2000,
            0,
            1000,
            3000,
            0.003,
            0,
        ),
        (NOV, "legal", "Legal helper", "gpt-4o-2024-08-06", "paygo", 1, 13, 0, 4, 17, 0.000058, 0),
        (
            NOV,
            "marketing",
            "Campaign writer",
            "gpt-4o-mini-2024-07-18",
            "paygo",
            3,
            300,
            0,
            60,
            360,
            0.00027,
            0,
        ),
        (
            NOV,
            "marketing",
            "Campaign writer",
            "mystery-model-1",
            "paygo",
            1,
            500,
            0,
            500,
            1000,
            0.0,
            1,
        ),
        (
            NOV,
            "marketing",
            "Campaign writer",
            "o3-2025-04-16",
            "paygo",
            1,
            1000,
            0,
            3000,
            4000,
            0.052,
            0,
        ),
        (
            NOV,
            "research",
            "Research agent",
            "gpt-4o-2024-08-06",
            "provisioned",
            1,
            1000,
            0,
            1000,
            2000,
            0.0,
            0,
        ),
        (
            NOV,
            "unassigned",
            "rogue-sub",
            "gpt-4o-2024-11-20",
            "paygo",
            1,
            100,
            0,
            100,
            200,
            0.001,
            0,
        ),
    ]


def test_cost_by_day(store: Path) -> None:
    got = [
        (
            r["Day"].date().isoformat(),
            r["BusinessUnit"],
            r["Model"],
            r["Calls"],
            r["TotalTokens"],
            r["Cost"],
        )
        for r in rows(store, "cost-by-day.kql")
    ]
    assert got == [
        ("2026-10-30", "finance", "gpt-4o-2024-08-06", 1, 1500, 0.0056),
        ("2026-11-02", "finance", "gpt-4o-mini-2024-07-18", 1, 3000, 0.003),
        ("2026-11-02", "marketing", "o3-2025-04-16", 1, 4000, 0.052),
        ("2026-11-03", "marketing", "mystery-model-1", 1, 1000, 0.0),
        ("2026-11-03", "unassigned", "gpt-4o-2024-11-20", 1, 200, 0.001),
        ("2026-11-04", "finance", "gpt-4o-2024-08-06", 1, 4000, 0.0),
        ("2026-11-05", "legal", "gpt-4o-2024-08-06", 1, 17, 0.000058),
        ("2026-11-05", "research", "gpt-4o-2024-08-06", 1, 2000, 0.0),
        ("2026-11-06", "marketing", "gpt-4o-mini-2024-07-18", 3, 360, 0.00027),
    ]


def test_chargeback_by_application_shares_out_the_ptu_bill(store: Path) -> None:
    got = [
        (
            r["Month"],
            r["BusinessUnit"],
            r["CostCenter"],
            r["Application"],
            r["Calls"],
            r["TotalTokens"],
            r["PaygoCost"],
            r["PtuShare"],
            r["PtuCost"],
            r["Cost"],
            r["Currency"],
            r["UnpricedCalls"],
        )
        for r in rows(store, "chargeback-by-application.kql", PtuMonthlyCost=300.0)
    ]
    # No month given: every month pays the bill; October had no provisioned tokens, so its
    # bill goes to the explicit unused row.
    assert got == [
        (
            OCT,
            "unassigned",
            "unassigned",
            "unused provisioned throughput",
            0,
            0,
            0.0,
            1.0,
            300.0,
            300.0,
            "EUR",
            0,
        ),
        (OCT, "finance", "CC-1001", "Finance chatbot", 1, 1500, 0.0056, 0.0, 0.0, 0.0056, "EUR", 0),
        (
            NOV,
            "finance",
            "CC-1001",
            "Finance chatbot",
            2,
            7000,
            0.003,
            0.6667,
            200.0,
            200.003,
            "EUR",
            0,
        ),
        (
            NOV,
            "research",
            "CC-3150",
            "Research agent",
            1,
            2000,
            0.0,
            0.3333,
            100.0,
            100.0,
            "EUR",
            0,
        ),
        (
            NOV,
            "marketing",
            "CC-2040",
            "Campaign writer",
            5,
            5360,
            0.05227,
            0.0,
            0.0,
            0.05227,
            "EUR",
            1,
        ),
        (NOV, "unassigned", "unassigned", "rogue-sub", 1, 200, 0.001, 0.0, 0.0, 0.001, "EUR", 0),
        (NOV, "legal", "unassigned", "Legal helper", 1, 17, 0.000058, 0.0, 0.0, 0.000058, "EUR", 0),
    ]


def test_chargeback_without_a_ptu_bill_is_the_pay_as_you_go_cost(store: Path) -> None:
    got = {
        (r["Month"], r["Application"]): (r["PtuCost"], r["Cost"])
        for r in rows(store, "chargeback-by-application.kql")
    }
    assert got[(NOV, "Finance chatbot")] == (0.0, 0.003)
    assert got[(NOV, "Research agent")] == (0.0, 0.0)


def test_ptu_share_out(store: Path) -> None:
    got = [
        (
            r["Month"],
            r["BusinessUnit"],
            r["CostCenter"],
            r["Application"],
            r["Calls"],
            r["TotalTokens"],
            r["PtuTokens"],
            r["PtuShare"],
            r["PtuCost"],
        )
        for r in rows(store, "ptu-share-out.kql", PtuMonthlyCost=300.0, ReportMonth="2026-11")
    ]
    assert got == [
        (NOV, "finance", "CC-1001", "Finance chatbot", 1, 4000, 4000.0, 0.6667, 200.0),
        (NOV, "research", "CC-3150", "Research agent", 1, 2000, 2000.0, 0.3333, 100.0),
    ]
    # The bill is in the price table's currency, named beside it.
    currencies = {
        r["Currency"]
        for r in rows(store, "ptu-share-out.kql", PtuMonthlyCost=300.0, ReportMonth="2026-11")
    }
    assert currencies == {"EUR"}


def test_ptu_share_out_with_output_tokens_weighted_as_azure_counts_them(store: Path) -> None:
    # finance 3000 + 4 x 1000 = 7000, research 1000 + 4 x 1000 = 5000: 7/12 and 5/12 of 300.
    got = [
        (r["Application"], r["PtuTokens"], r["PtuShare"], r["PtuCost"])
        for r in rows(
            store,
            "ptu-share-out.kql",
            PtuMonthlyCost=300.0,
            PtuOutputWeight=4.0,
            ReportMonth="2026-11",
        )
    ]
    assert got == [
        ("Finance chatbot", 7000.0, 0.5833, 175.0),
        ("Research agent", 5000.0, 0.4167, 125.0),
    ]


def test_ptu_share_out_of_one_deployment(store: Path) -> None:
    def ptu(deployment: str) -> list[tuple[Any, ...]]:
        return [
            (r["Application"], r["PtuCost"])
            for r in rows(
                store,
                "ptu-share-out.kql",
                PtuMonthlyCost=300.0,
                PtuDeployment=deployment,
                ReportMonth="2026-11",
            )
        ]

    # A deployment with no calls that month: its bill is not lost but shown unused.
    assert ptu("other") == [("unused provisioned throughput", 300.0)]
    assert ptu("ptu-gpt-4o") == [("Finance chatbot", 200.0), ("Research agent", 100.0)]


def test_top_consumers(store: Path) -> None:
    got = [
        (
            r["Application"],
            r["BusinessUnit"],
            r["Calls"],
            r["TotalTokens"],
            r["Cost"],
            r["Currency"],
            r["CostShare"],
            r["TokenShare"],
        )
        for r in rows(store, "top-consumers.kql")
    ]
    assert got == [
        ("Campaign writer", "marketing", 5, 5360, 0.05227, "EUR", 0.844, 0.3334),
        ("Finance chatbot", "finance", 3, 8500, 0.0086, "EUR", 0.1389, 0.5287),
        ("rogue-sub", "unassigned", 1, 200, 0.001, "EUR", 0.0161, 0.0124),
        ("Legal helper", "legal", 1, 17, 0.000058, "EUR", 0.0009, 0.0011),
        ("Research agent", "research", 1, 2000, 0.0, "EUR", 0.0, 0.1244),
    ]


def test_top_consumers_rank_by_the_whole_bill(store: Path) -> None:
    """The same Cost as chargeback-by-application.kql: with the PTU bill, the applications on
    provisioned deployments come first (it showed their pay-as-you-go cost alone)."""
    got = [
        (r["Application"], r["PaygoCost"], r["PtuCost"], r["Cost"], r["CostShare"])
        for r in rows(store, "top-consumers.kql", PtuMonthlyCost=300.0, ReportMonth="2026-11")
    ]
    assert got == [
        ("Finance chatbot", 0.003, 200.0, 200.003, 0.6666),
        ("Research agent", 0.0, 100.0, 100.0, 0.3333),
        ("Campaign writer", 0.05227, 0.0, 0.05227, 0.0002),
        ("rogue-sub", 0.001, 0.0, 0.001, 0.0),
        ("Legal helper", 0.000058, 0.0, 0.000058, 0.0),
    ]
    bill = {
        r["Application"]: r["Cost"]
        for r in rows(
            store, "chargeback-by-application.kql", PtuMonthlyCost=300.0, ReportMonth="2026-11"
        )
    }
    assert {application: cost for application, _, _, cost, _ in got} == bill


def test_data_quality_shows_how_firm_the_numbers_are(store: Path) -> None:
    got = [
        (
            r["Month"],
            r["BusinessUnit"],
            r["Calls"],
            r["TotalTokens"],
            r["ReportedTokens"],
            r["EstimatedTokens"],
            r["EstimatedShare"],
            r["TruncatedCalls"],
            r["TruncatedShare"],
            r["UnpricedCalls"],
            r["UnpricedTokens"],
            r["UnassignedCalls"],
        )
        for r in rows(store, "data-quality.kql")
    ]
    assert got == [
        (OCT, "finance", 1, 1500, 1500, 0, 0.0, 0, 0.0, 0, 0, 0),
        (NOV, "finance", 2, 7000, 7000, 0, 0.0, 0, 0.0, 0, 0, 0),
        (NOV, "legal", 1, 17, 0, 17, 1.0, 0, 0.0, 0, 0, 0),
        (NOV, "marketing", 5, 5360, 5360, 0, 0.0, 1, 0.2, 1, 1000, 0),
        (NOV, "research", 1, 2000, 2000, 0, 0.0, 0, 0.0, 0, 0, 0),
        (NOV, "unassigned", 1, 200, 200, 0, 0.0, 0, 0.0, 0, 0, 1),
    ]


def test_token_queries_use_the_mapped_application_and_business_unit(store: Path) -> None:
    by_app = {
        (r["Application"], r["BusinessUnit"]): (r["Calls"], r["TotalTokens"])
        for r in rows(store, "tokens-by-application.kql")
    }
    assert by_app == {
        ("Campaign writer", "marketing"): (5, 5360),
        ("Finance chatbot", "finance"): (3, 8500),
        ("Research agent", "research"): (1, 2000),
        ("rogue-sub", "unassigned"): (1, 200),
        ("Legal helper", "legal"): (1, 17),
    }
    by_unit = {
        r["BusinessUnit"]: r["TotalTokens"] for r in rows(store, "tokens-by-business-unit.kql")
    }
    assert by_unit == {
        "marketing": 5360,
        "finance": 8500,
        "research": 2000,
        "unassigned": 200,
        "legal": 17,
    }
