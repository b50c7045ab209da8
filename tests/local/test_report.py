"""`python -m chargeback report`: the month's table from the local store, and the HTML page
whose charts headless Chromium renders (Debian package `chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chargeback.local.report import build_report, parse_month, render_html, render_text
from chargeback.local.store import LocalStore
from chargeback.tools import cli

CHROMIUM_HINT = (
    "headless Chromium is needed to check the report's charts: install it with "
    "`apt-get update && apt-get install -y chromium` (Debian package `chromium`)"
)


def test_report_prints_the_latest_months_chargeback(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", "--db", str(store), "--ptu-monthly-cost", "300"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "Chargeback 2026-11 in EUR; prices test-prices-1 at GlobalStandard, Provisioned; PTU bill 300.00 shared out by tokens"
    )
    table = lines[lines.index("Per business unit and application") + 1 :]
    rows = [re.split(r"\s{2,}", line.strip()) for line in table[2:7]]
    assert rows == [
        [
            "finance",
            "CC-1001",
            "Finance chatbot",
            "2",
            "7,000",
            "0.003000",
            "66.67%",
            "200.00",
            "200.003000",
            "0",
        ],
        [
            "research",
            "CC-3150",
            "Research agent",
            "1",
            "2,000",
            "0.000000",
            "33.33%",
            "100.00",
            "100.000000",
            "0",
        ],
        [
            "marketing",
            "CC-2040",
            "Campaign writer",
            "5",
            "5,360",
            "0.052270",
            "0.00%",
            "0.00",
            "0.052270",
            "1",
        ],
        [
            "unassigned",
            "unassigned",
            "rogue-sub",
            "1",
            "200",
            "0.001000",
            "0.00%",
            "0.00",
            "0.001000",
            "0",
        ],
        [
            "legal",
            "unassigned",
            "Legal helper",
            "1",
            "17",
            "0.000058",
            "0.00%",
            "0.00",
            "0.000058",
            "0",
        ],
    ]
    total = next(line for line in lines if line.startswith("Total"))
    assert re.split(r"\s{2,}", total) == [
        "Total",
        "10",
        "14,577",
        "0.056328",
        "300.00",
        "300.056328",
        "1",
    ]
    assert lines[-1] == (
        "How firm: 0.1% of 14,577 tokens estimated rather than reported; 1 of 10 calls truncated;"
        " 1 calls unpriced (model not in the price table, cost 0); 1 calls unassigned"
    )


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
