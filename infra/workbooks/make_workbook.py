"""Builds infra/workbooks/chargeback.workbook.json, the Azure Monitor workbook of the chargeback,
from the query pack in queries/ so that the portal and `python -m chargeback report` show the
same numbers. Run from the repo root after changing a query:

    python infra/workbooks/make_workbook.py

tests/test_workbook.py fails when the JSON is out of date, and parses every query in it with
the real Kusto parser. The workbook reads the Application Insights resource it is deployed on
(workbook.bicep sets its sourceId); the time range picker applies to every query.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("chargeback.workbook.json")
RESOURCE_TYPE = "microsoft.insights/components"

# Workbook parameters standing in for the queries' `declare query_parameters`.
PARAMETER_LETS = (
    "let PtuMonthlyCost = toreal({PtuMonthlyCost});\n"
    "let PtuOutputWeight = toreal({PtuOutputWeight});\n"
    'let PtuDeployment = "{PtuDeployment}";\n'
)
_DECLARE = re.compile(r"^declare query_parameters\(.*\);\n", re.MULTILINE)
# Sample values for the placeholders, to parse the workbook's queries in tests.
SAMPLE_VALUES = {
    "PtuMonthlyCost": "0",
    "PtuOutputWeight": "1",
    "PtuDeployment": "",
}


def pack(name: str) -> str:
    """A query of the pack, comments dropped, parameters taken from the workbook's."""
    text = (ROOT / "queries" / name).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("//")) + "\n"
    return _DECLARE.sub(lambda _: PARAMETER_LETS, body).strip()


_CALLS = """customEvents
| where name == "Azure OpenAI Tokens"
| summarize arg_max(timestamp, customDimensions, customMeasurements, itemCount)
    by RequestId = coalesce(tostring(customDimensions.RequestId), itemId)"""

COST_PER_BUSINESS_UNIT_OVER_TIME = (
    _CALLS
    + """
| extend BusinessUnit = coalesce(tostring(customDimensions.BusinessUnit), "unassigned")
| summarize Cost = round(sum(todouble(customMeasurements.Cost) * itemCount), 6)
    by Day = startofday(timestamp), BusinessUnit
| order by Day asc, BusinessUnit asc"""
)

TOKENS_PER_MODEL = (
    _CALLS
    + """
| extend Model = coalesce(tostring(customDimensions.Model), "unknown")
| summarize TotalTokens = sum(tolong(customMeasurements.TotalTokens) * itemCount) by Model
| order by TotalTokens desc, Model asc"""
)

ESTIMATED_SHARE = (
    _CALLS
    + """
| extend Source = case(
    tostring(customDimensions.TokenSource) == "estimated", "estimated",
    tostring(customDimensions.TokenSource) == "", "unknown",
    "reported")
| summarize TotalTokens = sum(tolong(customMeasurements.TotalTokens) * itemCount) by Source
| order by Source asc"""
)


def text_item(name: str, markdown: str) -> dict[str, object]:
    return {"type": 1, "content": {"json": markdown}, "name": name}


def query_item(
    name: str, title: str, query: str, visualization: str, **extra: object
) -> dict[str, object]:
    content: dict[str, object] = {
        "version": "KqlItem/1.0",
        "query": query,
        "size": 0,
        "title": title,
        "timeContextFromParameter": "TimeRange",
        "queryType": 0,
        "resourceType": RESOURCE_TYPE,
        "visualization": visualization,
    }
    content.update(extra)
    return {"type": 3, "content": content, "name": name}


def parameters_item() -> dict[str, object]:
    return {
        "type": 9,
        "content": {
            "version": "KqlParameterItem/1.0",
            "parameters": [
                {
                    "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0001",
                    "version": "KqlParameterItem/1.0",
                    "name": "TimeRange",
                    "label": "Time range",
                    "type": 4,
                    "isRequired": True,
                    "value": {"durationMs": 2592000000},
                    "typeSettings": {
                        "selectableValues": [
                            {"durationMs": 604800000},
                            {"durationMs": 1209600000},
                            {"durationMs": 2592000000},
                            {"durationMs": 5184000000},
                            {"durationMs": 7776000000},
                        ],
                        "allowCustom": True,
                    },
                },
                {
                    "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0002",
                    "version": "KqlParameterItem/1.0",
                    "name": "PtuMonthlyCost",
                    "label": "PTU bill per month",
                    "type": 1,
                    "isRequired": True,
                    "value": "0",
                    "description": "The month's provisioned throughput bill, in the price "
                    "table's currency, shared out by tokens",
                },
                {
                    "id": "6f0b4c1e-7d0a-4c52-9d0e-0c6a1b0f0003",
                    "version": "KqlParameterItem/1.0",
                    "name": "PtuOutputWeight",
                    "label": "PTU output token weight",
                    "type": 1,
                    "isRequired": True,
                    "value": "1",
                    "description": "Input tokens one output token counts as (Azure counts 4 "
                    "for gpt-4.1 and later)",
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
            ],
            "style": "pills",
            "queryType": 0,
            "resourceType": RESOURCE_TYPE,
        },
        "name": "parameters",
    }


def workbook() -> dict[str, object]:
    return {
        "version": "Notebook/1.0",
        "items": [
            text_item(
                "intro",
                "## Azure OpenAI chargeback\n"
                "Cost per business unit and application from the `Azure OpenAI Tokens` "
                "events: pay-as-you-go calls at the price table's prices, provisioned (PTU) "
                "deployments shared out by tokens. Built from the query pack in `queries/`.",
            ),
            parameters_item(),
            query_item(
                "cost-per-business-unit-over-time",
                "Pay-as-you-go cost per business unit per day",
                COST_PER_BUSINESS_UNIT_OVER_TIME,
                "timechart",
            ),
            query_item("tokens-per-model", "Tokens per model", TOKENS_PER_MODEL, "barchart"),
            query_item(
                "top-applications",
                "Top applications by cost",
                pack("top-consumers.kql"),
                "table",
            ),
            query_item(
                "estimated-share",
                "Tokens reported by the API versus estimated",
                ESTIMATED_SHARE,
                "piechart",
            ),
            query_item(
                "chargeback",
                "Chargeback per business unit and application (with the PTU share)",
                pack("chargeback-by-application.kql"),
                "table",
            ),
            query_item(
                "ptu-share-out",
                "Provisioned throughput share-out",
                pack("ptu-share-out.kql"),
                "table",
            ),
            query_item(
                "data-quality",
                "How firm the numbers are",
                pack("data-quality.kql"),
                "table",
            ),
        ],
        "fallbackResourceIds": [],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render() -> str:
    return json.dumps(workbook(), indent=2) + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
