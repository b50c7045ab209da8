"""`python -m chargeback report`: the month's table from the local store, and the HTML page
whose charts headless Chromium renders (Debian package `chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chargeback.local.figures import MONEY_RULE
from chargeback.local.report import build_report, parse_month, render_html, render_text
from chargeback.local.store import LocalStore
from chargeback.tools import cli

CHROMIUM_HINT = (
    "headless Chromium is needed to check the report's charts: install it with "
    "`apt-get update && apt-get install -y chromium` (Debian package `chromium`)"
)


def _rows(lines: list[str], title: str) -> list[list[str]]:
    """The rows of the table under ``title``, cut where its dashes are."""
    at = lines.index(title)
    header, dashes = lines[at + 1], lines[at + 2]
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    table = [[header[a:b].strip() for a, b in spans]]
    for line in lines[at + 3 :]:
        if not line.strip():
            break
        table.append([line[a:b].strip() for a, b in spans[:-1]] + [line[spans[-1][0] :].strip()])
    return table


def test_report_prints_the_latest_months_chargeback(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--db", str(store), "--ptu-monthly-cost", "300"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "Chargeback 2026-11 in EUR; prices test-prices-1 at GlobalStandard, Provisioned;"
        " PTU bill 300.00 EUR shared out by tokens"
    )
    # Titles in words, the currency named; money to the cent, < 0.01 under half a cent.
    assert _rows(lines, "Per business unit and application") == [
        [
            "Business unit",
            "Cost center",
            "Application",
            "Calls",
            "Tokens",
            "Pay-as-you-go (EUR)",
            "PTU share",
            "PTU cost (EUR)",
            "Cost (EUR)",
            "Unpriced calls",
        ],
        [
            "finance",
            "CC-1001",
            "Finance chatbot",
            "2",
            "7,000",
            "< 0.01",
            "66.67%",
            "200.00",
            "200.00",
            "0",
        ],
        [
            "research",
            "CC-3150",
            "Research agent",
            "1",
            "2,000",
            "0.00",
            "33.33%",
            "100.00",
            "100.00",
            "0",
        ],
        [
            "marketing",
            "CC-2040",
            "Campaign writer",
            "5",
            "5,360",
            "0.05",
            "0.00%",
            "0.00",
            "0.05",
            "1",
        ],
        [
            "unassigned",
            "unassigned",
            "rogue-sub",
            "1",
            "200",
            "< 0.01",
            "0.00%",
            "0.00",
            "< 0.01",
            "0",
        ],
        [
            "legal",
            "unassigned",
            "Legal helper",
            "1",
            "17",
            "< 0.01",
            "0.00%",
            "0.00",
            "< 0.01",
            "0",
        ],
    ]
    units = _rows(lines, "Per business unit")
    # The total is added up before rounding: 0.056328 pay-as-you-go is 0.06.
    assert units[-1] == ["Total", "", "10", "14,577", "0.06", "300.00", "300.06", "1"]
    assert lines[-2] == (
        "How firm: 0.12% of 14,577 tokens estimated rather than reported; 1 of 10 calls"
        " truncated; 1 calls unpriced (model not in the price table, cost 0); 1 calls unassigned"
    )
    assert lines[-1] == MONEY_RULE


def test_without_a_ptu_bill_there_is_no_ptu_column(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--db", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "no PTU bill given: 6,000 tokens of provisioned deployments cost nothing here"
        " (--ptu-monthly-cost)"
    )
    assert _rows(lines, "Per business unit and application")[0] == [
        "Business unit",
        "Cost center",
        "Application",
        "Calls",
        "Tokens",
        "Cost (EUR)",
        "Unpriced calls",
    ]
    report = build_report(store)
    assert report is not None
    page = render_html(report)
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)
    assert headers and not [header for header in headers if "PTU" in header]
    assert 'data-series="PTU share"' not in page and "PTU share (pale)" not in page


def test_the_page_is_dated_with_titles_in_words(store: Path) -> None:
    made = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    report = build_report(store, ptu_monthly_cost=300.0, now=made)
    assert report is not None
    page = render_html(report)
    assert (
        "Covers 2026-11: the calls made in that calendar month (UTC, by each call&#x27;s own"
        " time). Made 2026-12-01 09:30 UTC." in page
    )
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)
    assert set(headers) == {
        "Business unit",
        "Cost center",
        "Application",
        "Calls",
        "Tokens",
        "Pay-as-you-go (EUR)",
        "PTU share",
        "PTU cost (EUR)",
        "Cost (EUR)",
        "Unpriced calls",
    }
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions == [
        "Cost per business unit (EUR)",
        "Pay-as-you-go cost per business unit and day (EUR)",
        "Tokens per model",
        "Top applications by cost (EUR)",
        "Tokens reported by the API versus estimated",
    ]


def test_one_colour_per_business_unit_on_every_chart(store: Path) -> None:
    """Issue 12: "PTU share" and a business unit shared a colour. Each business unit keeps one
    colour on every chart, its PTU share the pale part of it; what is not a business unit is
    grey, a colour no business unit has."""
    report = build_report(store, ptu_monthly_cost=300.0)
    assert report is not None
    page = render_html(report)
    bars = re.findall(r"<rect class=\"bar\" [^>]*>", page)
    unit_fills: dict[str, set[str]] = {}
    other_fills: set[str] = set()
    for bar in bars:
        fill = re.search(r'fill="(#[0-9a-f]{6})"', bar)
        unit = re.search(r'data-unit="([^"]*)"', bar)
        assert fill, bar
        if unit:
            unit_fills.setdefault(unit.group(1), set()).add(fill.group(1))
        else:
            other_fills.add(fill.group(1))
    assert set(unit_fills) == {"finance", "research", "marketing", "unassigned", "legal"}
    assert all(len(fills) == 1 for fills in unit_fills.values()), unit_fills
    colours = [next(iter(fills)) for fills in unit_fills.values()]
    assert len(set(colours)) == len(colours)  # no two units alike
    assert other_fills and not other_fills & set(colours)
    # Every chart that shows business units shows them all in their colour.
    for chart in ("cost-by-business-unit", "cost-by-day", "top-applications"):
        figure = page[page.index(f'data-chart="{chart}"') :]
        figure = figure[: figure.index("</figure>")]
        assert 'data-unit="finance"' in figure, chart


def test_report_of_an_earlier_month(store: Path) -> None:
    report = build_report(store, month=parse_month("2026-10"))
    assert report is not None
    assert [(r["Application"], r["Cost"]) for r in report.applications] == [
        ("Finance chatbot", 0.0056)
    ]
    assert "Chargeback 2026-10" in render_text(report)


def test_report_on_an_empty_store_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalStore(tmp_path / "empty.duckdb"):
        pass
    assert cli.main(["report", "--db", str(tmp_path / "empty.duckdb")]) == 1
    assert "no chargeback events" in capsys.readouterr().err


def test_the_html_page_is_self_contained(store: Path) -> None:
    report = build_report(store, ptu_monthly_cost=300.0)
    assert report is not None
    page = render_html(report)
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
    assert page.count('class="chart"') == 5


# A probe added to a copy of the page: it measures what the browser laid out.
_PROBE = """<script>
const charts = [...document.querySelectorAll('figure.chart')].map(figure => {
  const svg = figure.querySelector('svg').getBoundingClientRect();
  const bars = [...figure.querySelectorAll('rect.bar')].map(bar => {
    const box = bar.getBoundingClientRect();
    return [box.width, box.height];
  });
  return {chart: figure.dataset.chart, width: svg.width, height: svg.height, bars: bars};
});
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify(charts);
document.body.appendChild(out);
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(CHROMIUM_HINT)


def test_headless_chromium_renders_every_chart(store: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    page = tmp_path / "report.html"
    assert (
        cli.main(["report", "--db", str(store), "--ptu-monthly-cost", "300", "--html", str(page)])
        == 0
    )
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
    profile = tmp_path / "profile"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,2000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard like every subprocess here; a loaded run takes ~5 s
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"the probe did not run: {result.stdout[:500]}"
    charts = {c["chart"]: c for c in json.loads(found.group(1).replace("&quot;", '"'))}
    assert set(charts) == {
        "cost-by-business-unit",
        "cost-by-day",
        "tokens-by-model",
        "top-applications",
        "estimated-share",
    }
    for name, chart in charts.items():
        assert chart["width"] > 100 and chart["height"] > 20, name
        assert chart["bars"], f"{name} drew no bars"
        assert all(w > 0 and h > 0 for w, h in chart["bars"]), name
    # 5 models, gpt-4o-2024-08-06 both pay-as-you-go (legal) and provisioned: 6 segments;
    # pay-as-you-go cost on 4 days of November, 2 business units on 2026-11-02: 5 columns'
    # segments (the 1px floor keeps legal's 0.000058 visible next to marketing's 0.052).
    assert len(charts["tokens-by-model"]["bars"]) == 6
    assert len(charts["cost-by-day"]["bars"]) == 5
