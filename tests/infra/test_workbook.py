"""The Azure Monitor workbooks (infra/workbooks/chargeback.workbook.json on Application Insights,
chargeback-workspace.workbook.json on the Log Analytics workspace): their shape, that they are up
to date with the query packs, that every query in them parses with the real Kusto parser against
its own schema and runs under duckdb-kql as the workbook would send it, month picker and text
parameters included (a quote in a deployment name, a PTU bill of "1,200")."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chargeback.local.kql import run_kql
from tests.support.kusto_parser import (
    APPEVENTS_SCHEMA_PATH,
    SCHEMA_PATH,
    check_kql,
    format_diagnostics,
)

ROOT = Path(__file__).resolve().parents[2]
WORKBOOKS = ROOT / "infra" / "workbooks"
WORKBOOK = WORKBOOKS / "chargeback.workbook.json"
WORKSPACE_WORKBOOK = WORKBOOKS / "chargeback-workspace.workbook.json"
VISUALIZATIONS = {"table", "barchart", "piechart", "timechart", "areachart", "linechart", "tiles"}
KINDS = [
    (WORKBOOK, "microsoft.insights/components", SCHEMA_PATH),
    (WORKSPACE_WORKBOOK, "microsoft.operationalinsights/workspaces", APPEVENTS_SCHEMA_PATH),
]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_workbook", WORKBOOKS / "make_workbook.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: Path = WORKBOOK) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def query_items(workbook: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in workbook["items"] if item["type"] == 3]


def parameters(workbook: dict[str, Any]) -> dict[str, dict[str, Any]]:
    step = next(item for item in workbook["items"] if item["type"] == 9)
    return {p["name"]: p for p in step["content"]["parameters"]}


def fill(text: str, values: dict[str, str]) -> str:
    """The query as the workbook sends it: each {Name:base64} replaced by the value's base64."""

    def one(match: re.Match[str]) -> str:
        return base64.b64encode(values[match.group(1)].encode()).decode()

    return re.sub(r"\{(\w+):base64\}", one, text)


@pytest.mark.parametrize(
    ("path", "resource_type", "schema"), KINDS, ids=["appinsights", "workspace"]
)
def test_the_workbook_is_a_notebook_of_log_queries_with_a_month_picker(
    path: Path, resource_type: str, schema: Path
) -> None:
    workbook = load(path)
    assert workbook["version"] == "Notebook/1.0"
    items = query_items(workbook)
    assert len(items) >= 7
    for item in items:
        content = item["content"]
        assert content["version"] == "KqlItem/1.0"
        assert content["queryType"] == 0
        assert content["resourceType"] == resource_type
        assert content["visualization"] in VISUALIZATIONS, item["name"]
        assert "timeContextFromParameter" not in content  # no rolling range: the month decides
        assert "ChargebackCalls" in content["query"]
    names = {item["name"] for item in items}
    assert {"cost-per-business-unit-over-time", "tokens-per-model", "top-applications",
            "estimated-share", "chargeback", "ptu-share-out", "data-quality"} <= names  # fmt: skip
    declared = parameters(workbook)
    used = {
        m for item in items for m in re.findall(r"\{(\w+)(?::\w+)?\}", item["content"]["query"])
    }
    assert used <= set(declared)
    assert "TimeRange" not in declared
    month = declared["ReportMonth"]
    assert month["type"] == 2 and month["isRequired"]  # a drop-down of months
    for name in ("PtuMonthlyCost", "PtuOutputWeight"):
        (rule,) = declared[name]["validations"]
        assert re.match(rule["regExp"], "1200.50") and not re.match(rule["regExp"], "1,200")
    # Every text parameter reaches KQL base64-encoded: no value can change the query's text.
    for item in items:
        assert not re.search(r"\{\w+\}", item["content"]["query"]), item["name"]
    placeholder = (
        "__LOG_ANALYTICS_WORKSPACE_ID__"
        if "workspace" in path.name
        else ("__APPLICATION_INSIGHTS_ID__")
    )
    assert workbook["fallbackResourceIds"] == [placeholder]


def test_the_workbooks_are_up_to_date_with_the_query_packs() -> None:
    make = generator()
    assert WORKBOOK.read_text(encoding="utf-8") == make.render(False), (
        "run `python infra/workbooks/make_workbook.py`"
    )
    assert WORKSPACE_WORKBOOK.read_text(encoding="utf-8") == make.render(True)


@pytest.mark.parametrize(
    ("path", "resource_type", "schema"), KINDS, ids=["appinsights", "workspace"]
)
def test_every_workbook_query_parses_with_the_kusto_parser(
    path: Path, resource_type: str, schema: Path
) -> None:
    workbook = load(path)
    hostile = {
        "ReportMonth": "2026-11",
        "PtuMonthlyCost": "1,200",
        "PtuOutputWeight": "4",
        "PtuDeployment": "ptu\"gpt'4o\\",
        "AppInsightsResourceId": "",
    }
    texts = {
        item["name"]: fill(item["content"]["query"], hostile) for item in query_items(workbook)
    }
    texts["months"] = parameters(workbook)["ReportMonth"]["query"]
    problems = {
        name: format_diagnostics(texts[name], found)
        for name, found in check_kql(texts, schema=schema).items()
        if found
    }
    assert problems == {}


def test_workbook_queries_run_as_the_workbook_sends_them(store: Path) -> None:
    values = {
        "ReportMonth": "2026-11",
        "PtuMonthlyCost": "300",
        "PtuOutputWeight": "1",
        "PtuDeployment": "",
        "AppInsightsResourceId": "",
    }
    results: dict[str, list[Any]] = {}
    for path in (WORKBOOK, WORKSPACE_WORKBOOK):
        for item in query_items(load(path)):
            result = run_kql(store, fill(item["content"]["query"], values))
            results.setdefault(item["name"], []).append((result.columns, result.rows))
    assert all(a == b for a, b in results.values())  # both workbooks show the same numbers
    columns, shares = results["ptu-share-out"][0]
    app, bill = columns.index("Application"), columns.index("PtuCost")
    ptu = {r[app]: r[bill] for r in shares}
    assert ptu == {"Finance chatbot": 200.0, "Research agent": 100.0}
    # A quote in the deployment name is a deployment name, not KQL: no share, the bill unused.
    quoted = next(i for i in query_items(load(WORKBOOK)) if i["name"] == "ptu-share-out")
    rows = run_kql(store, fill(quoted["content"]["query"], {**values, "PtuDeployment": 'x"y'})).rows
    assert [(r[app], r[bill]) for r in rows] == [("unused provisioned throughput", 300.0)]


def test_the_bicep_fills_in_the_resources_of_both_workbooks() -> None:
    bicep = (WORKBOOKS / "workbook.bicep").read_text()
    assert (
        "replace(loadTextContent('chargeback.workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)"
        in bicep
    )
    assert "'__LOG_ANALYTICS_WORKSPACE_ID__', logAnalyticsWorkspaceId" in bicep
    assert "sourceId: logAnalyticsWorkspaceId" in bicep
    main = (ROOT / "infra" / "main.bicep").read_text()
    assert "logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId" in main
