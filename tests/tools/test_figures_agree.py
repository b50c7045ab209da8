"""Issue 12: the demo, ``query``, ``report`` and the HTML page show the same figures in the same
format for the same store. The demo showed finance at 0.000660 in one table and 1,529.52 in the
next; ``query`` printed 0.000026 as 0.0000 and the PTU share as 0.8603; the page mixed 2 and 6
decimals in one column.

Each view is made as a user makes it (``python -m chargeback ...`` in a fresh process; the page
as headless Chromium lays it out) and read back: every business unit's and application's
calls, tokens, pay-as-you-go cost, PTU share, PTU cost and cost must read the same, character
for character, in all four."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local.test_report import _chromium

ROOT = Path(__file__).resolve().parents[2]
#: The demo's PTU bill (chargeback.tools.demo.DEMO_PARAMETERS).
BILL = "10950"

Figures = dict[tuple[str, ...], dict[str, str]]

#: A figure's name in each view: the query's column, and the report's title in words.
QUERY_NAMES = {
    "Calls": "calls",
    "TotalTokens": "tokens",
    "PaygoCost": "pay-as-you-go",
    "PtuShare": "PTU share",
    "PtuCost": "PTU cost",
    "Cost": "cost",
}
REPORT_NAMES = {
    "Calls": "calls",
    "Tokens": "tokens",
    "Pay-as-you-go (USD)": "pay-as-you-go",
    "PTU share": "PTU share",
    "PTU cost (USD)": "PTU cost",
    "Cost (USD)": "cost",
}


def run(*args: str, cwd: Path) -> str:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONNECTION")
    }
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "chargeback", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def text_tables(lines: list[str]) -> list[list[list[str]]]:
    """Every aligned table of a text output, cut where its dashes are."""
    tables = []
    for at, line in enumerate(lines):
        if not re.fullmatch(r"-+(  -+)*", line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        ends = [a for a, _ in spans[1:]] + [None]
        rows = []
        for row in [lines[at - 1], *lines[at + 1 :]]:
            if not row.strip():
                break
            rows.append([row[a:b].strip() for (a, _), b in zip(spans, ends, strict=True)])
        tables.append(rows)
    return tables


def html_tables(page: str) -> list[list[list[str]]]:
    return [
        [
            [
                html.unescape(re.sub(r"<[^>]+>", "", c))
                for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)
            ]
            for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)
        ]
        for table in re.findall(r"<table>(.*?)</table>", page, re.S)
    ]


def figures(table: list[list[str]], names: dict[str, str], keys: tuple[str, ...]) -> Figures:
    """Row key (business unit, and application) -> figure name -> text."""
    header, rows = table[0], table[1:]
    index = {name: header.index(name) for name in keys}
    out: Figures = {}
    for row in rows:
        if row[0] == "Total":
            continue
        key = tuple(row[index[name]] for name in keys)
        out[key] = {names[h]: row[i] for i, h in enumerate(header) if h in names}
    return out


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The four views of one store: the demo's."""
    folder = tmp_path_factory.mktemp("views")
    for name in ("samples", "queries"):
        (folder / name).symlink_to(ROOT / name)
    demo = run("demo", cwd=folder)
    query = run(
        "query",
        "queries/cost-by-business-unit.kql",
        "queries/chargeback-by-application.kql",
        "--param",
        f"PtuMonthlyCost={BILL}",
        cwd=folder,
    )
    report = run("report", "--ptu-monthly-cost", BILL, "--html", "page.html", cwd=folder)
    laid_out = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={folder / 'profile'}",
            "--dump-dom",
            (folder / "page.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only
        check=False,
    )
    assert laid_out.returncode == 0, laid_out.stderr[-2000:]
    return {"demo": demo, "query": query, "report": report, "page": laid_out.stdout}


def test_every_view_shows_the_same_figures_in_the_same_format(views: dict[str, str]) -> None:
    demo_tables = text_tables(views["demo"].splitlines())
    query_tables = text_tables(views["query"].splitlines())
    report_tables = text_tables(views["report"].splitlines())
    page_tables = html_tables(views["page"])
    # The demo's tables are query's, to the character.
    assert views["demo"][views["demo"].index("# cost-by-business-unit.kql") :] == (
        views["query"].lstrip("\n")
    )
    unit, app = ("BusinessUnit",), ("BusinessUnit", "Application")
    words_unit, words_app = ("Business unit",), ("Business unit", "Application")
    units = {
        "demo": figures(demo_tables[0], QUERY_NAMES, unit),
        "query": figures(query_tables[0], QUERY_NAMES, unit),
        "report": figures(report_tables[1], REPORT_NAMES, words_unit),
        "page": figures(page_tables[1], REPORT_NAMES, words_unit),
    }
    applications = {
        "demo": figures(demo_tables[1], QUERY_NAMES, app),
        "query": figures(query_tables[1], QUERY_NAMES, app),
        "report": figures(report_tables[0], REPORT_NAMES, words_app),
        "page": figures(page_tables[0], REPORT_NAMES, words_app),
    }
    for shown in (units, applications):
        first = shown["query"]
        assert first and all(view == first for view in shown.values()), shown
    # The example: finance's bill is one figure everywhere, its pay-as-you-go part too.
    assert units["query"][("finance",)] == {
        "calls": "3",
        "tokens": "61",
        "pay-as-you-go": "< 0.01",
        "PTU cost": "1,529.52",
        "cost": "1,529.52",
    }
    assert applications["query"][("research", "Research agent")]["PTU share"] == "86.03%"
    # The page's chart says the same as its tables.
    chart = views["page"][views["page"].index('data-chart="cost-by-business-unit"') :]
    chart = chart[: chart.index("</svg>")]
    labels = re.findall(r'class="label"[^>]*>([^<]*)<', chart)
    values = [html.unescape(v) for v in re.findall(r'class="value"[^>]*>([^<]*)<', chart)]
    assert dict(zip(labels, values, strict=True)) == {
        key[0]: figure["cost"] for key, figure in units["query"].items()
    }


def test_every_view_names_the_currency(views: dict[str, str]) -> None:
    for name in ("demo", "query"):
        tables = text_tables(views[name].splitlines())
        for table in tables:
            column = table[0].index("Currency")
            assert {row[column] for row in table[1:]} == {"USD"}, name
    assert "PTU bill 10,950.00 USD a month" in views["demo"]
    assert views["report"].splitlines()[0].startswith("Chargeback 2026-11 in USD;")
    assert "PTU bill 10,950.00 USD" in views["report"]
    titles = re.findall(r"<th[^>]*>(.*?)</th>", views["page"])
    assert {"Pay-as-you-go (USD)", "PTU cost (USD)", "Cost (USD)"} <= set(titles)
