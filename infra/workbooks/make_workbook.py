"""Builds the two Azure Monitor workbooks of the chargeback from the query packs, so that the
portal and `python -m chargeback report` show the same numbers:

- ``chargeback.workbook.json`` on the Application Insights resource (``customEvents``);
- ``chargeback-workspace.workbook.json`` on its Log Analytics workspace (``AppEvents``).

Run from the repo root after changing a query (after ``python queries/make_queries.py``):

    python infra/workbooks/make_workbook.py

tests/test_workbook.py fails when the JSON is out of date, and parses every query in it with the
real Kusto parser against its own schema. The month picker replaces a rolling time range: every
query filters on the calls' own month (queries/src/prelude). Text parameters reach the queries
base64-encoded (``{Name:base64}``, "Parameter formatting options", learn.microsoft.com/azure/
azure-monitor/visualize/workbooks-parameters) and are decoded in KQL, so no value, a quote or a
"1,200" included, can change a query's text; the numeric ones are also checked by a regular
expression ("Add validations", .../visualize/workbooks-text). workbook.bicep fills in the
resources: ``__APPLICATION_INSIGHTS_ID__`` and ``__LOG_ANALYTICS_WORKSPACE_ID__``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = HERE / "chargeback.workbook.json"
OUT_WORKSPACE = HERE / "chargeback-workspace.workbook.json"
APPINSIGHTS_TYPE = "microsoft.insights/components"
WORKSPACE_TYPE = "microsoft.operationalinsights/workspaces"
#: Placeholders workbook.bicep replaces with the deployed resources' ids.
APPINSIGHTS_ID = "__APPLICATION_INSIGHTS_ID__"
WORKSPACE_ID = "__LOG_ANALYTICS_WORKSPACE_ID__"

_DECLARE = re.compile(r"^declare query_parameters\((?P<parameters>[^\n]*)\);\n", re.MULTILINE)
# How each query parameter is read from the workbook's parameter of the same name.
_READ = {
    "ReportMonth": 'base64_decode_tostring("{ReportMonth:base64}")',
    "AppInsightsResourceId": 'base64_decode_tostring("{AppInsightsResourceId:base64}")',
    "PtuMonthlyCost": 'toreal(base64_decode_tostring("{PtuMonthlyCost:base64}"))',
    "PtuOutputWeight": 'toreal(base64_decode_tostring("{PtuOutputWeight:base64}"))',
    "PtuDeployment": 'base64_decode_tostring("{PtuDeployment:base64}")',
}
#: Sample values for the placeholders, to parse and run the workbook's queries in tests
#: (base64 of the text the workbook would pass).
SAMPLE_VALUES = {
    "ReportMonth:base64": "MjAyNi0xMQ==",  # 2026-11
    "AppInsightsResourceId:base64": "",
    "PtuMonthlyCost:base64": "MzAw",  # 300
    "PtuOutputWeight:base64": "MQ==",  # 1
    "PtuDeployment:base64": "",
}
NUMBER = r"^\s*[0-9]+(\.[0-9]+)?\s*$"


def _make_queries() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_queries", ROOT / "queries" / "make_queries.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _workbook_text(query: str) -> str:
    """A pack query, comments dropped, its parameters read from the workbook's."""
    body = "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("//"))

    def lets(match: re.Match[str]) -> str:
        names = [part.split(":", 1)[0].strip() for part in match.group("parameters").split(",")]
        return "".join(f"let {name} = {_READ[name]};\n" for name in names)

    return _DECLARE.sub(lets, body + "\n").strip()


# Workbook-only views, written as the pack's queries are: a body over ChargebackCalls.
COST_PER_BUSINESS_UNIT_OVER_TIME = """ChargebackCalls
| summarize Cost = round(sum(Cost * itemCount), 6) by Day = startofday(CallTime), BusinessUnit
| order by Day asc, BusinessUnit asc
"""
TOKENS_PER_MODEL = """ChargebackCalls
| summarize TotalTokens = sum(TotalTokens * itemCount) by Model
| order by TotalTokens desc, Model asc
"""
ESTIMATED_SHARE = """ChargebackCalls
| extend Source = case(
    TokenSource == "estimated", "estimated",
    TokenSource == "gateway", "API Management LLM log",
    isempty(TokenSource), "unknown",
    "reported by the API")
| summarize TotalTokens = sum(TotalTokens * itemCount) by Source
| order by Source asc
"""


def queries(workspace: bool) -> dict[str, str]:
    """Name -> workbook query text, from the pack of one schema."""
    make = _make_queries()
    pick = 1 if workspace else 0
    views = {
        "cost-per-business-unit-over-time": COST_PER_BUSINESS_UNIT_OVER_TIME,
        "tokens-per-model": TOKENS_PER_MODEL,
        "estimated-share": ESTIMATED_SHARE,
    }
    out = {name: make.render_query(name + ".kql", body)[pick] for name, body in views.items()}
    pack = ROOT / "queries" / ("workspace" if workspace else "")
    for name, file in (
        ("top-applications", "top-consumers.kql"),
        ("chargeback", "chargeback-by-application.kql"),
        ("ptu-share-out", "ptu-share-out.kql"),
        ("data-quality", "data-quality.kql"),
    ):
        out[name] = (pack / file).read_text(encoding="utf-8")
    return {name: _workbook_text(text) for name, text in out.items()}


def text_item(name: str, markdown: str) -> dict[str, object]:
    return {"type": 1, "content": {"json": markdown}, "name": name}


def query_item(
    name: str, title: str, query: str, resource_type: str, visualization: str, **extra: object
) -> dict[str, object]:
    # No time range binding: each query filters on its month by itself (the month picker).
    content: dict[str, object] = {
        "version": "KqlItem/1.0",
        "query": query,
        "size": 0,
        "title": title,
        "queryType": 0,
        "resourceType": resource_type,
        "visualization": visualization,
    }
    content.update(extra)
    return {"type": 3, "content": content, "name": name}


_MONTHS = """range Offset from 0 to 12 step 1
| extend Month = format_datetime(datetime_add("month", -Offset, startofmonth(now())), "yyyy-MM")
| project value = Month, label = Month, selected = Offset == 1"""


def parameters_item(workspace: bool) -> dict[str, object]:
    resource_type = WORKSPACE_TYPE if workspace else APPINSIGHTS_TYPE
    parameters: list[dict[str, object]] = [
        {
            "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0001",
            "version": "KqlParameterItem/1.0",
            "name": "ReportMonth",
            "label": "Month",
            "type": 2,
            "isRequired": True,
            "query": _MONTHS,
            "queryType": 0,
            "resourceType": resource_type,
            "typeSettings": {"showDefault": False},
            "description": "The calendar month (UTC) of the calls' own time; the last complete "
            "month by default",
        },
        {
            "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0002",
            "version": "KqlParameterItem/1.0",
            "name": "PtuMonthlyCost",
            "label": "PTU bill of the month",
            "type": 1,
            "isRequired": True,
            "value": "0",
            "validations": [
                {
                    "regExp": NUMBER,
                    "match": True,
                    "message": "Digits and a decimal point only, e.g. 1200.50 (no thousands "
                    "separator, no currency sign)",
                }
            ],
            "description": "The month's provisioned throughput bill, in the price table's "
            "currency, shared out by tokens",
        },
        {
            "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0003",
            "version": "KqlParameterItem/1.0",
            "name": "PtuOutputWeight",
            "label": "PTU output token weight",
            "type": 1,
            "isRequired": True,
            "value": "1",
            "validations": [{"regExp": NUMBER, "match": True, "message": "A number, e.g. 1 or 4"}],
            "description": "Input tokens one output token counts as (Azure counts 4 for gpt-4.1 "
            "and later)",
        },
        {
            "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0004",
            "version": "KqlParameterItem/1.0",
            "name": "PtuDeployment",
            "label": "PTU deployment (empty: all)",
            "type": 1,
            "isRequired": False,
            "value": "",
        },
    ]
    if workspace:
        parameters.append(
            {
                "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0005",
                "version": "KqlParameterItem/1.0",
                "name": "AppInsightsResourceId",
                "label": "Application Insights resource",
                "type": 1,
                "isRequired": False,
                "isHiddenWhenLocked": True,
                "value": APPINSIGHTS_ID,
                "description": "Only this resource's events are read from the workspace",
            }
        )
    return {
        "type": 9,
        "content": {
            "version": "KqlParameterItem/1.0",
            "parameters": parameters,
            "style": "pills",
            "queryType": 0,
            "resourceType": resource_type,
        },
        "name": "parameters",
    }


def workbook(workspace: bool = False) -> dict[str, object]:
    kind = WORKSPACE_TYPE if workspace else APPINSIGHTS_TYPE
    texts = queries(workspace)
    return {
        "version": "Notebook/1.0",
        "items": [
            text_item(
                "intro",
                "## Azure OpenAI chargeback\n"
                "Cost per business unit and application from the `Azure OpenAI Tokens` "
                "events of one calendar month (by each call's own time, late events "
                "included): pay-as-you-go calls at the price table's prices, provisioned (PTU) "
                "deployments shared out by tokens. Built from the query packs in `queries/`"
                + (" (workspace pack: AppEvents)." if workspace else "."),
            ),
            parameters_item(workspace),
            query_item(
                "cost-per-business-unit-over-time",
                "Pay-as-you-go cost per business unit per day",
                texts["cost-per-business-unit-over-time"],
                kind,
                "timechart",
            ),
            query_item(
                "tokens-per-model", "Tokens per model", texts["tokens-per-model"], kind, "barchart"
            ),
            query_item(
                "top-applications",
                "Top applications by cost",
                texts["top-applications"],
                kind,
                "table",
            ),
            query_item(
                "estimated-share",
                "Tokens reported by the API versus estimated",
                texts["estimated-share"],
                kind,
                "piechart",
            ),
            query_item(
                "chargeback",
                "Chargeback per business unit and application (with the PTU share)",
                texts["chargeback"],
                kind,
                "table",
            ),
            query_item(
                "ptu-share-out",
                "Provisioned throughput share-out",
                texts["ptu-share-out"],
                kind,
                "table",
            ),
            query_item(
                "data-quality",
                "How firm the numbers are",
                texts["data-quality"],
                kind,
                "table",
            ),
        ],
        "fallbackResourceIds": [WORKSPACE_ID if workspace else APPINSIGHTS_ID],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render(workspace: bool = False) -> str:
    return json.dumps(workbook(workspace), indent=2) + "\n"


def main() -> int:
    for path, workspace in ((OUT, False), (OUT_WORKSPACE, True)):
        path.write_text(render(workspace), encoding="utf-8")
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
