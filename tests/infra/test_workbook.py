"""The Azure Monitor workbook (infra/workbooks/chargeback.workbook.json): its shape, that it is
up to date with the query pack, and that every query in it parses with the real Kusto parser
against the customEvents schema."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.kusto_parser import check_kql, format_diagnostics

WORKBOOKS = Path(__file__).resolve().parents[2] / "infra" / "workbooks"
WORKBOOK = WORKBOOKS / "chargeback.workbook.json"
VISUALIZATIONS = {"table", "barchart", "piechart", "timechart", "areachart", "linechart", "tiles"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_workbook", WORKBOOKS / "make_workbook.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return loaded


def query_items(workbook: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in workbook["items"] if item["type"] == 3]


def test_the_workbook_is_a_notebook_of_log_queries_on_application_insights() -> None:
    workbook = load()
    assert workbook["version"] == "Notebook/1.0"
    items = query_items(workbook)
    assert len(items) >= 4
    for item in items:
        content = item["content"]
        assert content["version"] == "KqlItem/1.0"
        assert content["queryType"] == 0
        assert content["resourceType"] == "microsoft.insights/components"
        assert content["visualization"] in VISUALIZATIONS, item["name"]
        assert content["timeContextFromParameter"] == "TimeRange"
    names = {item["name"] for item in items}
    assert {
        "cost-per-business-unit-over-time",
        "tokens-per-model",
        "top-applications",
        "estimated-share",
    } <= names
    parameters = next(item for item in workbook["items"] if item["type"] == 9)
    declared = {p["name"] for p in parameters["content"]["parameters"]}
    used = {m for item in items for m in re.findall(r"\{(\w+)\}", item["content"]["query"])}
    assert used <= declared
    assert "TimeRange" in declared


def test_the_workbook_is_up_to_date_with_the_query_pack() -> None:
    assert WORKBOOK.read_text(encoding="utf-8") == generator().render(), (
        "run `python infra/workbooks/make_workbook.py`"
    )


def test_every_workbook_query_parses_with_the_kusto_parser() -> None:
    samples = generator().SAMPLE_VALUES
    texts = {}
    for item in query_items(load()):
        text = item["content"]["query"]
        for name, value in samples.items():
            text = text.replace("{" + name + "}", value)
        assert "{" not in re.sub(r"\{\s*\}", "", text.replace("{}", "")) or "dynamic(" in text, (
            item["name"]
        )
        texts[item["name"]] = text
    problems = {
        name: format_diagnostics(texts[name], found)
        for name, found in check_kql(texts).items()
        if found
    }
    assert problems == {}
