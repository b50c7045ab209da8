"""Calendar months, late events, calls without RequestId, the halves of one call, a month with no
provisioned tokens, and the two schemas: the query packs on events built to sit on those edges.

The events are envelopes as the exporter sends them (tests/chargeback_events.py shows the same
shape coming out of the real exporter), stored by the local store in customEvents and AppEvents.
The late one is stored under the workspace's documented time rule ("The TimeGenerated value
cannot be older than 2 days before received time [...] it would be replaced with the actual
received time", learn.microsoft.com/azure/azure-monitor/logs/log-standard-columns), with the
store's ingestion clock set three days after the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargeback.local.kql import run_kql
from chargeback.local.store import LOCAL_RESOURCE_ID, LocalStore

QUERIES = Path(__file__).resolve().parents[2] / "queries"
WORKSPACE = QUERIES / "workspace"
OCT, NOV, DEC = datetime(2026, 10, 1), datetime(2026, 11, 1), datetime(2026, 12, 1)
FINANCE = {"Application": "Finance chatbot", "BusinessUnit": "finance", "CostCenter": "CC-1001"}


class Clock:
    """The store's ingestion clock: set before each ingest."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def envelope(
    when: str,
    dimensions: dict[str, str],
    tokens: tuple[int, int],
    *,
    cost: float = 0.0,
    item_count: int = 1,
) -> dict[str, Any]:
    prompt, completion = tokens
    return {
        "name": "Microsoft.ApplicationInsights.Event",
        "time": when,
        "sampleRate": 100.0 / item_count,
        "iKey": "00000000-0000-0000-0000-000000000000",
        "tags": {"ai.cloud.role": "chargeback-processor"},
        "data": {
            "baseType": "EventData",
            "baseData": {
                "ver": 2,
                "name": "Azure OpenAI Tokens",
                "properties": {
                    "Timestamp": when,
                    "Model": "gpt-4o-2024-08-06",
                    "Deployment": "gpt-4o",
                    "Billing": "paygo",
                    "Priced": "true",
                    "Currency": "USD",
                    "PriceVersion": "azure-openai-2026-08-11",
                    "DeploymentType": "GlobalStandard",
                    **dimensions,
                },
                "measurements": {
                    "PromptTokens": float(prompt),
                    "CompletionTokens": float(completion),
                    "TotalTokens": float(prompt + completion),
                    "Cost": cost,
                },
            },
        },
    }


def usage(request_id: str, **who: str) -> dict[str, str]:
    return {"RequestId": request_id, "TokenSource": "usage", "IdentitySource": "appId", **who}


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("months") / "store.duckdb"
    clock = Clock()
    store = LocalStore(path, received_at=clock)
    # Straddling the month's edge, each ingested at once.
    clock.now = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
    store.ingest(
        [
            envelope("2026-10-31T23:59:59.999Z", usage("edge-oct", **FINANCE), (100, 10), cost=1.0),
            envelope("2026-11-01T00:00:00.000Z", usage("edge-nov", **FINANCE), (200, 20), cost=2.0),
        ]
    )
    # Three days late: a call of October 30 that reaches the workspace on November 2.
    clock.now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    store.ingest(
        [envelope("2026-10-30T12:00:00.000Z", usage("late", **FINANCE), (400, 40), cost=4.0)]
    )
    # Two calls without RequestId (another writer of the event name): two calls, not one.
    clock.now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    legacy = {"TokenSource": "event", "AppKey": "legacy-kXXXX", "BusinessUnit": "legal"}
    store.ingest(
        [
            envelope("2026-11-03T09:00:00.000Z", legacy, (10, 1)),
            envelope("2026-11-03T09:00:00.000Z", legacy, (10, 1)),
        ]
    )
    # One streamed call in three halves: our estimate (with the caller), API Management's LLM
    # log (tokens, no caller) and the API's usage; and one seen only estimated + in the LLM log.
    clock.now = datetime(2026, 11, 4, 10, 0, tzinfo=UTC)
    estimated = {"RequestId": "stream-1", "TokenSource": "estimated", "IdentitySource": "appId"}
    gateway = {
        "RequestId": "stream-1",
        "TokenSource": "gateway",
        "IdentitySource": "unassigned",
        "BusinessUnit": "unassigned",
    }
    store.ingest(
        [
            envelope("2026-11-04T09:00:00.000Z", {**estimated, **FINANCE}, (50, 0), cost=0.5),
            envelope("2026-11-04T09:00:01.000Z", gateway, (55, 900), cost=9.55),
            envelope("2026-11-04T09:00:00.000Z", usage("stream-1"), (56, 901), cost=9.57),
            envelope(
                "2026-11-04T10:00:00.000Z",
                {**estimated, "RequestId": "stream-2", **FINANCE},
                (70, 0),
                cost=0.7,
            ),
            envelope("2026-11-04T10:00:02.000Z", {**gateway, "RequestId": "stream-2"}, (70, 300)),
        ]
    )
    # December: calls, none provisioned.
    clock.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    store.ingest(
        [envelope("2026-12-01T09:00:00.000Z", usage("dec-1", **FINANCE), (5, 5), cost=0.1)]
    )
    yield path


def run(db: Path, name: str, pack: Path = QUERIES, **parameters: Any) -> list[dict[str, Any]]:
    text = (pack / name).read_text(encoding="utf-8")
    result = run_kql(db, text, parameters or None)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_the_late_event_is_stored_at_its_arrival_and_counted_in_its_own_month(edges: Path) -> None:
    stored = run_kql(
        edges,
        'AppEvents | where tostring(Properties.RequestId) == "late" | project TimeGenerated',
    ).rows
    assert stored == [(datetime(2026, 11, 2, 12, 0),)]  # re-stamped: it is in November's rows
    october = {
        r["BusinessUnit"]: r["TotalTokens"]
        for r in run(edges, "cost-by-business-unit.kql", ReportMonth="2026-10")
    }
    # October: the call at 23:59:59.999 and the late call of the 30th; nothing of November.
    assert october == {"finance": 110 + 440}


def test_events_straddling_the_month_edge_fall_in_their_own_months(edges: Path) -> None:
    november = run(edges, "cost-by-business-unit.kql", ReportMonth="2026-11")
    assert [(r["Month"], r["BusinessUnit"], r["Calls"]) for r in november] == [
        (NOV, "finance", 3),  # edge-nov, stream-1, stream-2
        (NOV, "legal", 2),
    ]


def test_every_daily_view_puts_a_call_on_its_own_day(edges: Path) -> None:
    by_day = {
        (r["Day"], r["BusinessUnit"]): r["TotalTokens"] for r in run(edges, "tokens-by-day.kql")
    }
    cost_days: dict[tuple[datetime, str], int] = {}
    for r in run(edges, "cost-by-day.kql"):
        key = (r["Day"], r["BusinessUnit"])
        cost_days[key] = cost_days.get(key, 0) + r["TotalTokens"]
    assert by_day == cost_days
    assert by_day[(datetime(2026, 10, 30), "finance")] == 440  # the late call, not on Nov 2


def test_calls_without_request_id_stay_apart(edges: Path) -> None:
    by_unit = {
        r["BusinessUnit"]: (r["Calls"], r["TotalTokens"])
        for r in run(edges, "tokens-by-business-unit.kql")
    }
    assert by_unit["legal"] == (2, 22)


def test_the_halves_of_a_call_merge_by_precedence_and_keep_the_caller(edges: Path) -> None:
    models = {
        (r["Application"], r["BusinessUnit"]): (r["Calls"], r["TotalTokens"])
        for r in run(edges, "tokens-by-application.kql", ReportMonth="2026-11")
    }
    # stream-1: the API's usage (56 + 901) over the LLM log and the estimate; stream-2: the LLM
    # log (70 + 300) over the estimate; both charged to the caller the estimate named.
    assert models[("Finance chatbot", "finance")] == (3, 220 + 957 + 370)
    assert ("unassigned", "unassigned") not in models
    quality = {r["BusinessUnit"]: r for r in run(edges, "data-quality.kql", ReportMonth="2026-11")}
    assert (quality["finance"]["GatewayTokens"], quality["finance"]["EstimatedTokens"]) == (370, 0)


def test_a_month_without_provisioned_tokens_gives_its_bill_to_an_explicit_row(edges: Path) -> None:
    for month in ("2026-12", "2027-01"):  # with calls, none provisioned; with no call at all
        got = [
            (r["Application"], r["BusinessUnit"], r["PtuShare"], r["PtuCost"])
            for r in run(edges, "ptu-share-out.kql", ReportMonth=month, PtuMonthlyCost=100.0)
        ]
        assert got == [("unused provisioned throughput", "unassigned", 1.0, 100.0)], month
    december = run(
        edges, "chargeback-by-application.kql", ReportMonth="2026-12", PtuMonthlyCost=100.0
    )
    assert [(r["Application"], r["PtuCost"], r["Cost"]) for r in december] == [
        ("unused provisioned throughput", 100.0, 100.0),
        ("Finance chatbot", 0.0, 0.1),
    ]
    assert sum(r["PtuCost"] for r in december) == 100.0  # the whole bill, to someone


PARAMETER_SETS: list[dict[str, Any]] = [
    {},
    {"ReportMonth": "2026-10"},
    {"ReportMonth": "2026-11", "PtuMonthlyCost": 300.0, "PtuOutputWeight": 4.0},
    {"ReportMonth": "2026-12", "PtuMonthlyCost": 100.0},
]


@pytest.mark.parametrize("name", sorted(p.name for p in QUERIES.glob("*.kql")))
def test_both_schemas_give_identical_results(edges: Path, store: Path, name: str) -> None:
    text = (QUERIES / name).read_text(encoding="utf-8")
    workspace = (WORKSPACE / name).read_text(encoding="utf-8")
    for db in (edges, store):
        for parameters in PARAMETER_SETS:
            used = {k: v for k, v in parameters.items() if f"{k}:" in text} or None
            a, b = run_kql(db, text, used), run_kql(db, workspace, used)
            assert a.columns == b.columns, (name, parameters)
            if name.startswith("article-"):  # the article's queries do not order their rows
                assert sorted(map(repr, a.rows)) == sorted(map(repr, b.rows)), name
            else:
                assert a.rows == b.rows, (name, parameters)


def test_the_workspace_pack_reads_only_its_application_insights_resource(edges: Path) -> None:
    # Another app of the workspace writes an event of the same name under another resource.
    with LocalStore(edges).connect() as con:
        con.execute(
            "INSERT INTO AppEvents SELECT * REPLACE ("
            " '/subscriptions/1/resourcegroups/x/providers/microsoft.insights/components/other'"
            " AS _ResourceId, 'other-' || _ItemId AS _ItemId,"
            ' json_merge_patch(Properties, \'{"RequestId": "other-app"}\') AS Properties)'
            " FROM AppEvents"
            " WHERE Properties->>'RequestId' = 'dec-1'"
        )
    try:
        query = "tokens-by-business-unit.kql"
        own = run(edges, query, WORKSPACE, AppInsightsResourceId=LOCAL_RESOURCE_ID.upper())
        every = run(edges, query, WORKSPACE)
        assert own == run(edges, query)  # the resource id compares case-blind
        finance = {r["BusinessUnit"]: r["Calls"] for r in every}["finance"]
        assert finance == {r["BusinessUnit"]: r["Calls"] for r in own}["finance"] + 1
    finally:
        with LocalStore(edges).connect() as con:
            con.execute("DELETE FROM AppEvents WHERE _ItemId LIKE 'other-%'")
