"""``python -m chargeback report``: the month's chargeback from the local store.

The numbers come from the query pack in ``queries/`` (the same KQL the workbook runs in Azure),
run on the local store with duckdb-kql. ``--html FILE`` writes one self-contained page: inline
CSS and inline SVG charts drawn here, no script, nothing fetched from anywhere.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "QUERIES_DIR",
    "Report",
    "build_report",
    "money_table",
    "parse_month",
    "render_html",
    "render_text",
]

#: The query pack, beside the package in the repository.
QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"

Row = dict[str, Any]

PALETTE = (
    "#2f6db5",
    "#e07b39",
    "#3a9a5b",
    "#c0504d",
    "#8064a2",
    "#4bacc6",
    "#9c7a3c",
    "#d36fa4",
    "#7f7f7f",
    "#5a8f29",
)


@dataclass
class Report:
    month: date
    currency: str
    price_versions: list[str]
    ptu_monthly_cost: float
    #: chargeback-by-application.kql rows of the month.
    applications: list[Row]
    #: cost-by-day.kql rows of the month.
    days: list[Row]
    #: cost-by-month.kql rows of the month.
    models: list[Row]
    #: data-quality.kql rows of the month.
    quality: list[Row]
    months: list[date] = field(default_factory=list)
    #: The deployment types the month's pay-as-you-go costs were priced at.
    deployment_types: list[str] = field(default_factory=list)

    def business_units(self) -> list[Row]:
        """Per business unit and cost center: the applications' rows added up."""
        units: dict[tuple[str, str], Row] = {}
        for row in self.applications:
            key = (row["BusinessUnit"], row["CostCenter"])
            unit = units.setdefault(
                key,
                {
                    "BusinessUnit": key[0],
                    "CostCenter": key[1],
                    "Calls": 0,
                    "TotalTokens": 0,
                    "PaygoCost": 0.0,
                    "PtuCost": 0.0,
                    "Cost": 0.0,
                    "UnpricedCalls": 0,
                },
            )
            for name in ("Calls", "TotalTokens", "PaygoCost", "PtuCost", "Cost", "UnpricedCalls"):
                unit[name] += row[name] or 0
        return sorted(units.values(), key=lambda u: (-u["Cost"], u["BusinessUnit"]))

    def totals(self) -> Row:
        names = ("Calls", "TotalTokens", "PaygoCost", "PtuCost", "Cost", "UnpricedCalls")
        return {name: sum(row[name] or 0 for row in self.applications) for name in names}

    def firmness(self) -> Row:
        names = (
            "Calls",
            "TotalTokens",
            "EstimatedTokens",
            "TruncatedCalls",
            "UnpricedCalls",
            "UnassignedCalls",
        )
        return {name: sum(row[name] or 0 for row in self.quality) for name in names}

    def tokens_per_model(self) -> list[tuple[str, dict[str, float]]]:
        models: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for row in self.models:
            models[row["Model"]][row["Billing"]] += row["TotalTokens"] or 0
        return sorted(models.items(), key=lambda item: (-sum(item[1].values()), item[0]))


# --- Building ---------------------------------------------------------------------------------


def _month_of(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date().replace(day=1)
    if isinstance(value, date):
        return value.replace(day=1)
    return datetime.fromisoformat(str(value)).date().replace(day=1)


def _rows(
    db: Path, queries: Path, name: str, parameters: dict[str, Any] | None = None
) -> list[Row]:
    from chargeback.kql import run_kql

    result = run_kql(db, (queries / name).read_text(encoding="utf-8"), parameters)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def parse_month(text: str) -> date:
    """``YYYY-MM`` -> the first day of that month."""
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"not a month (YYYY-MM): {text!r}") from None


def build_report(
    db: Path,
    *,
    month: date | None = None,
    ptu_monthly_cost: float = 0.0,
    ptu_output_weight: float = 1.0,
    queries: Path = QUERIES_DIR,
) -> Report | None:
    """The chargeback of ``month`` (default: the latest month in the store), every query run for
    that calendar month of the calls' own time (``ReportMonth``); None when the store holds no
    chargeback events."""
    months = sorted({_month_of(row["Month"]) for row in _rows(db, queries, "cost-by-month.kql")})
    if not months:
        return None
    chosen = month.replace(day=1) if month else months[-1]
    parameters: dict[str, Any] = {"ReportMonth": f"{chosen:%Y-%m}"}
    ptu = {**parameters, "PtuMonthlyCost": ptu_monthly_cost, "PtuOutputWeight": ptu_output_weight}
    applications = _rows(db, queries, "chargeback-by-application.kql", ptu)
    currencies = sorted({row["Currency"] for row in applications if row["Currency"]})
    return Report(
        month=chosen,
        currency=", ".join(currencies) or "(no currency)",
        price_versions=_listed(applications, "PriceVersions"),
        ptu_monthly_cost=ptu_monthly_cost,
        applications=applications,
        days=_rows(db, queries, "cost-by-day.kql", parameters),
        models=_rows(db, queries, "cost-by-month.kql", parameters),
        quality=_rows(db, queries, "data-quality.kql", parameters),
        months=months,
        deployment_types=_listed(applications, "DeploymentTypes"),
    )


def _listed(rows: list[Row], column: str) -> list[str]:
    """The distinct names of a comma-separated column (PriceVersions, DeploymentTypes)."""
    return sorted({name for row in rows for name in str(row[column] or "").split(", ") if name})


# --- Text ---------------------------------------------------------------------------------------


def _money_format(values: list[float]) -> str:
    """Two decimals, unless some non-zero amount would show as 0.00."""
    if any(0 < abs(v) < 0.005 for v in values):
        return "{:,.6f}"
    return "{:,.2f}"


def _table(rows: list[Row], columns: list[tuple[str, str]], money: set[str]) -> str:
    formats = {
        key: _money_format([float(row[key] or 0) for row in rows])
        for key, _ in columns
        if key in money
    }
    cells = [[title for _, title in columns]]
    for row in rows:
        line = []
        for key, _ in columns:
            value = row.get(key)
            if key in formats:
                line.append(formats[key].format(float(value or 0)))
            elif isinstance(value, float) and key.endswith("Share"):
                line.append(f"{value:.2%}")
            elif isinstance(value, int):
                line.append(f"{value:,}")
            else:
                line.append("" if value is None else str(value))
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    numeric = [key in money or key.endswith(("Calls", "Tokens", "Share")) for key, _ in columns]
    out = []
    for index, line in enumerate(cells):
        out.append(
            "  ".join(
                cell.rjust(width) if right else cell.ljust(width)
                for cell, width, right in zip(line, widths, numeric, strict=True)
            ).rstrip()
        )
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


_MONEY = {"PaygoCost", "PtuCost", "Cost"}


def money_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A query result as text, amounts with enough decimals to show (the demo's tables)."""
    records = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        for key, value in record.items():
            if isinstance(value, datetime) and key in ("Month", "Day"):
                record[key] = f"{value:%Y-%m}" if key == "Month" else f"{value:%Y-%m-%d}"
        records.append(record)
    money = {name for name in columns if name in _MONEY or name.endswith("Cost")}
    return _table(records, [(name, name) for name in columns], money)


_APP_COLUMNS = [
    ("BusinessUnit", "BusinessUnit"),
    ("CostCenter", "CostCenter"),
    ("Application", "Application"),
    ("Calls", "Calls"),
    ("TotalTokens", "Tokens"),
    ("PaygoCost", "PayAsYouGo"),
    ("PtuShare", "PtuShare"),
    ("PtuCost", "PtuCost"),
    ("Cost", "Cost"),
    ("UnpricedCalls", "UnpricedCalls"),
]
_UNIT_COLUMNS = [
    ("BusinessUnit", "BusinessUnit"),
    ("CostCenter", "CostCenter"),
    ("Calls", "Calls"),
    ("TotalTokens", "Tokens"),
    ("PaygoCost", "PayAsYouGo"),
    ("PtuCost", "PtuCost"),
    ("Cost", "Cost"),
    ("UnpricedCalls", "UnpricedCalls"),
]


def _headline(report: Report) -> str:
    ptu = (
        f"PTU bill {report.ptu_monthly_cost:,.2f} shared out by tokens"
        if report.ptu_monthly_cost
        else "no PTU bill given (--ptu-monthly-cost)"
    )
    return (
        f"Chargeback {report.month:%Y-%m} in {report.currency}; "
        f"prices {', '.join(report.price_versions) or '(none)'} at "
        f"{', '.join(report.deployment_types) or '(no deployment type)'}; {ptu}"
    )


def _firmness_line(report: Report) -> str:
    f = report.firmness()
    share = f["EstimatedTokens"] / f["TotalTokens"] if f["TotalTokens"] else 0.0
    return (
        f"How firm: {share:.1%} of {f['TotalTokens']:,} tokens estimated rather than reported;"
        f" {f['TruncatedCalls']:,} of {f['Calls']:,} calls truncated;"
        f" {f['UnpricedCalls']:,} calls unpriced (model not in the price table, cost 0);"
        f" {f['UnassignedCalls']:,} calls unassigned"
    )


def render_text(report: Report) -> str:
    totals = {"BusinessUnit": "Total", "CostCenter": "", **report.totals()}
    parts = [
        _headline(report),
        "",
        "Per business unit and application",
        _table(report.applications, _APP_COLUMNS, _MONEY),
        "",
        "Per business unit",
        _table([*report.business_units(), totals], _UNIT_COLUMNS, _MONEY),
        "",
        _firmness_line(report),
    ]
    return "\n".join(parts) + "\n"


# --- HTML and SVG ---------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _amount(value: float) -> str:
    return f"{value:,.6f}" if 0 < abs(value) < 0.005 else f"{value:,.2f}"


def _legend(series: list[str], colors: dict[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colors[name]}"></span>{_esc(name)}</li>'
        for name in series
    )
    return f'<ul class="legend">{items}</ul>'


def _figure(chart: str, title: str, svg: str, legend: str = "", note: str = "") -> str:
    note_html = f'<p class="note">{_esc(note)}</p>' if note else ""
    return (
        f'<figure class="chart" data-chart="{chart}"><figcaption>{_esc(title)}</figcaption>'
        f"{svg}{legend}{note_html}</figure>"
    )


def _empty_svg(message: str) -> str:
    return (
        '<svg class="chart-svg" width="640" height="60" viewBox="0 0 640 60" role="img">'
        f'<text x="10" y="35" class="empty">{_esc(message)}</text></svg>'
    )


def hbar_chart(
    items: list[tuple[str, dict[str, float]]],
    series: list[str],
    colors: dict[str, str],
    *,
    fmt: Any = _amount,
    label_width: int = 220,
    width: int = 640,
) -> str:
    """Horizontal stacked bars: one row per item, one segment per series."""
    if not items or not any(v > 0 for _, values in items for v in values.values()):
        return _empty_svg("nothing to show for this month")
    bar, gap = 22, 8
    plot = width - label_width - 110
    top = max(sum(max(v, 0) for v in values.values()) for _, values in items)
    height = len(items) * (bar + gap) + gap
    parts = [
        f'<svg class="chart-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for index, (label, values) in enumerate(items):
        y = gap + index * (bar + gap)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar * 0.7:.1f}" class="label" '
            f'text-anchor="end">{_esc(label)}</text>'
        )
        x = float(label_width)
        for name in series:
            value = values.get(name, 0.0)
            if value <= 0:
                continue
            length = max(1.0, plot * value / top)  # a non-zero amount stays visible
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{y}" width="{length:.2f}" height="{bar}" '
                f'fill="{colors[name]}"><title>{_esc(label)} · {_esc(name)}: '
                f"{_esc(fmt(value))}</title></rect>"
            )
            x += length
        total = sum(v for v in values.values() if v > 0)
        parts.append(
            f'<text x="{x + 6:.2f}" y="{y + bar * 0.7:.1f}" class="value">{_esc(fmt(total))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    categories: list[str],
    values: dict[str, dict[str, float]],
    series: list[str],
    colors: dict[str, str],
    *,
    fmt: Any = _amount,
    width: int = 640,
    height: int = 260,
) -> str:
    """Vertical stacked columns: one column per category (day), one segment per series."""
    totals = {c: sum(v for v in values.get(c, {}).values() if v > 0) for c in categories}
    if not categories or not any(totals.values()):
        return _empty_svg("nothing to show for this month")
    left, bottom, top_pad = 70, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max(totals.values())
    step = plot_w / len(categories)
    col = max(4.0, step * 0.7)
    parts = [
        f'<svg class="chart-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" '
        'class="axis"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" class="tick" text-anchor="end">'
        f"{_esc(fmt(top))}</text>",
        f'<text x="{left - 6}" y="{top_pad + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for index, category in enumerate(categories):
        x = left + index * step + (step - col) / 2
        y = float(top_pad + plot_h)
        for name in series:
            value = values.get(category, {}).get(name, 0.0)
            if value <= 0:
                continue
            length = max(1.0, plot_h * value / top)
            y -= length
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{col:.2f}" '
                f'height="{length:.2f}" fill="{colors[name]}"><title>{_esc(category)} · '
                f"{_esc(name)}: {_esc(fmt(value))}</title></rect>"
            )
        parts.append(
            f'<text x="{x + col / 2:.2f}" y="{top_pad + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{_esc(category[-5:])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _colors(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def _html_table(rows: list[Row], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{_esc(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key in _MONEY:
                cells.append(f'<td class="num">{_esc(_amount(float(value or 0)))}</td>')
            elif isinstance(value, float) and key.endswith("Share"):
                cells.append(f'<td class="num">{value:.2%}</td>')
            elif isinstance(value, int | float):
                cells.append(f'<td class="num">{value:,}</td>')
            else:
                cells.append(f"<td>{_esc('' if value is None else value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.4em;margin:0 0 4px} p.sub{color:#555;margin:0 0 18px}
.grid{display:flex;flex-wrap:wrap;gap:18px}
figure.chart{margin:0;padding:12px;border:1px solid #ddd;border-radius:6px;background:#fff}
figcaption{font-weight:600;margin-bottom:8px}
svg .label,svg .value,svg .tick{font-size:12px;fill:#333} svg .empty{fill:#888;font-size:13px}
svg .axis{stroke:#999;stroke-width:1}
.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:12px;
font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;margin:10px 0 22px;font-size:13px}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} th{background:#f4f6f8}
p.note{font-size:12px;color:#666;margin:6px 0 0}
"""


def render_html(report: Report) -> str:
    units = report.business_units()
    unit_names = [unit["BusinessUnit"] for unit in units]
    unit_colors = _colors(unit_names)

    day_values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.days:
        day = _month_day(row["Day"])
        day_values[day][row["BusinessUnit"]] += float(row["Cost"] or 0)
    days = sorted(day_values)
    cost_by_day = column_chart(days, day_values, unit_names, unit_colors)

    kinds = ["pay-as-you-go", "PTU share"]
    kind_colors = {"pay-as-you-go": PALETTE[0], "PTU share": PALETTE[1]}
    unit_items = [
        (u["BusinessUnit"], {"pay-as-you-go": u["PaygoCost"], "PTU share": u["PtuCost"]})
        for u in units
    ]
    cost_by_unit = hbar_chart(unit_items, kinds, kind_colors)

    billing = ["paygo", "provisioned"]
    billing_colors = {"paygo": PALETTE[2], "provisioned": PALETTE[4]}
    model_items = [(model, dict(values)) for model, values in report.tokens_per_model()]
    tokens_by_model = hbar_chart(model_items, billing, billing_colors, fmt=_tokens)

    top_apps = sorted(report.applications, key=lambda r: (-(r["Cost"] or 0), r["Application"]))
    app_items = [
        (
            f"{row['Application']} ({row['BusinessUnit']})",
            {"pay-as-you-go": row["PaygoCost"] or 0.0, "PTU share": row["PtuCost"] or 0.0},
        )
        for row in top_apps[:10]
    ]
    top_applications = hbar_chart(app_items, kinds, kind_colors, label_width=260)

    f = report.firmness()
    sources = {
        "reported": f["TotalTokens"] - f["EstimatedTokens"],
        "estimated": f["EstimatedTokens"],
    }
    source_colors = {"reported": PALETTE[2], "estimated": PALETTE[3]}
    firm = hbar_chart([("tokens", sources)], ["reported", "estimated"], source_colors, fmt=_tokens)

    totals = {"BusinessUnit": "Total", "CostCenter": "", **report.totals()}
    charts = [
        _figure(
            "cost-by-business-unit",
            "Cost per business unit",
            cost_by_unit,
            _legend(kinds, kind_colors),
        ),
        _figure(
            "cost-by-day",
            "Pay-as-you-go cost per business unit and day",
            cost_by_day,
            _legend(unit_names, unit_colors),
        ),
        _figure(
            "tokens-by-model",
            "Tokens per model",
            tokens_by_model,
            _legend(billing, billing_colors),
        ),
        _figure(
            "top-applications",
            "Top applications by cost",
            top_applications,
            _legend(kinds, kind_colors),
        ),
        _figure(
            "estimated-share",
            "Tokens reported by the API versus estimated",
            firm,
            _legend(["reported", "estimated"], source_colors),
            _firmness_line(report),
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Chargeback {report.month:%Y-%m}</title><style>{_CSS}</style></head><body>"
        f"<h1>Azure OpenAI chargeback {report.month:%Y-%m}</h1>"
        f'<p class="sub">{_esc(_headline(report))}</p>'
        f'<div class="grid">{"".join(charts)}</div>'
        "<h2>Per business unit and application</h2>"
        f"{_html_table(report.applications, _APP_COLUMNS)}"
        "<h2>Per business unit</h2>"
        f"{_html_table([*units, totals], _UNIT_COLUMNS)}"
        "</body></html>\n"
    )


def _tokens(value: float) -> str:
    return f"{value:,.0f}"


def _month_day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]
