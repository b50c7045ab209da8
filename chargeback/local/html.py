"""The report as one self-contained HTML page: inline CSS and inline SVG charts drawn here, no
script, nothing fetched from anywhere.

Every figure is shown as `chargeback.local.figures` shows it, as in the text report and
``query``. Each business unit has one colour on every chart (its cost, its days, its
applications); what is not a business unit (pay-as-you-go or provisioned tokens, reported or
estimated tokens) is drawn in greys no business unit has. A business unit's PTU share is the
pale part of its own colour. The page says when it was made and which month it covers.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from chargeback.local.figures import MONEY_RULE, cell, count, money, period
from chargeback.local.report import (
    Column,
    Report,
    Row,
    application_columns,
    firmness_line,
    headline,
    total_row,
    unit_columns,
)

__all__ = ["PALETTE", "Segment", "column_chart", "hbar_chart", "render_html"]

#: Business units' colours, in order of cost (none is a grey).
PALETTE = (
    "#2f6db5",
    "#e07b39",
    "#3a9a5b",
    "#c0504d",
    "#8064a2",
    "#4bacc6",
    "#9c7a3c",
    "#d36fa4",
    "#5a8f29",
    "#1f9e89",
    "#b5a22f",
    "#6b4c9a",
)
#: What is not a business unit: two greys, dark and light.
DARK, LIGHT = "#555555", "#b3b3b3"
#: The PTU share: the business unit's own colour, pale.
PALE = 0.45


@dataclass(frozen=True)
class Segment:
    """One stacked piece of a bar: its series, value, colour, and the business unit it is."""

    series: str
    value: float
    color: str
    unit: str = ""
    pale: bool = False


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _rect(segment: Segment, label: str, fmt: Any, **box: float) -> str:
    position = " ".join(f'{name}="{value:.2f}"' for name, value in box.items())
    unit = f' data-unit="{_esc(segment.unit)}"' if segment.unit else ""
    opacity = f' fill-opacity="{PALE}"' if segment.pale else ""
    return (
        f'<rect class="bar" {position} fill="{segment.color}"{opacity}{unit} '
        f'data-series="{_esc(segment.series)}"><title>{_esc(label)} · {_esc(segment.series)}: '
        f"{_esc(fmt(segment.value))}</title></rect>"
    )


def _legend(items: list[tuple[str, str, bool]]) -> str:
    """(name, colour, pale) swatches."""
    swatches = "".join(
        f'<li><span class="swatch" style="background:{color};'
        f'{f"opacity:{PALE}" if pale else ""}"></span>{_esc(name)}</li>'
        for name, color, pale in items
    )
    return f'<ul class="legend">{swatches}</ul>'


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
    items: list[tuple[str, list[Segment]]],
    *,
    fmt: Any = money,
    label_width: int = 220,
    width: int = 640,
) -> str:
    """Horizontal stacked bars: one row per item, its segments in turn, its total at the end."""
    if not any(s.value > 0 for _, segments in items for s in segments):
        return _empty_svg("nothing to show for this month")
    bar, gap = 22, 8
    plot = width - label_width - 110
    top = max(sum(max(s.value, 0) for s in segments) for _, segments in items)
    height = len(items) * (bar + gap) + gap
    parts = [
        f'<svg class="chart-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for index, (label, segments) in enumerate(items):
        y = gap + index * (bar + gap)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar * 0.7:.1f}" class="label" '
            f'text-anchor="end">{_esc(label)}</text>'
        )
        x = float(label_width)
        for segment in segments:
            if segment.value <= 0:
                continue
            length = max(1.0, plot * segment.value / top)  # a non-zero amount stays visible
            parts.append(_rect(segment, label, fmt, x=x, y=y, width=length, height=bar))
            x += length
        total = sum(s.value for s in segments if s.value > 0)
        parts.append(
            f'<text x="{x + 6:.2f}" y="{y + bar * 0.7:.1f}" class="value">{_esc(fmt(total))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    columns: list[tuple[str, list[Segment]]],
    *,
    fmt: Any = money,
    width: int = 640,
    height: int = 260,
) -> str:
    """Vertical stacked columns: one column per category (a day), its segments in turn."""
    totals = [sum(s.value for s in segments if s.value > 0) for _, segments in columns]
    if not any(totals):
        return _empty_svg("nothing to show for this month")
    left, bottom, top_pad = 70, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max(totals)
    step = plot_w / len(columns)
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
    for index, (category, segments) in enumerate(columns):
        x = left + index * step + (step - col) / 2
        y = float(top_pad + plot_h)
        for segment in segments:
            if segment.value <= 0:
                continue
            length = max(1.0, plot_h * segment.value / top)
            y -= length
            parts.append(_rect(segment, category, fmt, x=x, y=y, width=col, height=length))
        parts.append(
            f'<text x="{x + col / 2:.2f}" y="{top_pad + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{_esc(category[-5:])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(rows: list[Row], columns: list[Column]) -> str:
    head = "".join(
        f"<th{' class=num' if column.numeric else ''}>{_esc(column.title)}</th>"
        for column in columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if column.numeric else ''}>"
            f"{_esc(cell(column.key, row.get(column.key)))}</td>"
            for column in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.4em;margin:0 0 4px} p.sub{color:#555;margin:0 0 6px}
.grid{display:flex;flex-wrap:wrap;gap:18px;margin-top:12px}
figure.chart{margin:0;padding:12px;border:1px solid #ddd;border-radius:6px;background:#fff}
figcaption{font-weight:600;margin-bottom:8px}
svg .label,svg .value,svg .tick{font-size:12px;fill:#333} svg .empty{fill:#888;font-size:13px}
svg .axis{stroke:#999;stroke-width:1}
.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:12px;
font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;margin:10px 0 22px;font-size:13px}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums} th{background:#f4f6f8}
p.note{font-size:12px;color:#666;margin:6px 0 0}
"""


def unit_colors(report: Report) -> dict[str, str]:
    """One colour per business unit, in order of cost, for every chart."""
    names = [unit["BusinessUnit"] for unit in report.business_units()]
    for row in report.days:  # a unit with pay-as-you-go days but no row this month: none
        if row["BusinessUnit"] not in names:
            names.append(row["BusinessUnit"])
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def _cost_segments(row: Row, color: str, report: Report) -> list[Segment]:
    unit = row["BusinessUnit"]
    segments = [Segment("pay-as-you-go", float(row["PaygoCost"] or 0), color, unit)]
    if report.has_ptu:
        segments.append(Segment("PTU share", float(row["PtuCost"] or 0), color, unit, pale=True))
    return segments


_BILLING_COLORS = {"paygo": DARK, "provisioned": LIGHT}
_BILLING_NAMES = {"paygo": "pay-as-you-go", "provisioned": "provisioned (PTU)"}


def _charts(report: Report, currency: str) -> list[str]:
    """The page's five charts, each a figure with its legend."""
    colors = unit_colors(report)
    kinds = _legend([("pay-as-you-go", DARK, False), ("PTU share (pale)", DARK, True)])
    unit_legend = _legend([(name, color, False) for name, color in colors.items()])
    with_ptu = unit_legend + (kinds if report.has_ptu else "")
    return [
        _figure(
            "cost-by-business-unit",
            f"Cost per business unit ({currency})",
            _by_unit(report, colors),
            with_ptu,
        ),
        _figure(
            "cost-by-day",
            f"Pay-as-you-go cost per business unit and day ({currency})",
            _by_day(report, colors),
            unit_legend,
        ),
        _figure(
            "tokens-by-model",
            "Tokens per model",
            _by_model(report),
            _legend([(_BILLING_NAMES[k], c, False) for k, c in _BILLING_COLORS.items()]),
        ),
        _figure(
            "top-applications",
            f"Top applications by cost ({currency})",
            _top_applications(report, colors),
            with_ptu,
        ),
        _figure(
            "estimated-share",
            "Tokens reported by the API versus estimated",
            _firmness(report),
            _legend([("reported", DARK, False), ("estimated", LIGHT, False)]),
            firmness_line(report),
        ),
    ]


def _by_unit(report: Report, colors: dict[str, str]) -> str:
    units = report.business_units()
    return hbar_chart(
        [(u["BusinessUnit"], _cost_segments(u, colors[u["BusinessUnit"]], report)) for u in units]
    )


def _by_day(report: Report, colors: dict[str, str]) -> str:
    day_values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.days:
        day_values[_day(row["Day"])][row["BusinessUnit"]] += float(row["Cost"] or 0)
    return column_chart(
        [
            (day, [Segment(unit, cost, colors[unit], unit) for unit, cost in values.items()])
            for day, values in sorted(day_values.items())
        ]
    )


def _by_model(report: Report) -> str:
    items = [
        (
            model,
            [
                Segment(_BILLING_NAMES.get(kind, kind), tokens, _BILLING_COLORS.get(kind, DARK))
                for kind, tokens in sorted(values.items())
            ],
        )
        for model, values in report.tokens_per_model()
    ]
    return hbar_chart(items, fmt=count)


def _top_applications(report: Report, colors: dict[str, str]) -> str:
    top = sorted(report.applications, key=lambda r: (-(r["Cost"] or 0), r["Application"]))
    items = [
        (
            f"{row['Application']} ({row['BusinessUnit']})",
            _cost_segments(row, colors.get(row["BusinessUnit"], DARK), report),
        )
        for row in top[:10]
    ]
    return hbar_chart(items, label_width=260)


def _firmness(report: Report) -> str:
    f = report.firmness()
    reported = f["TotalTokens"] - f["EstimatedTokens"]
    segments = [
        Segment("reported", reported, DARK),
        Segment("estimated", f["EstimatedTokens"], LIGHT),
    ]
    return hbar_chart([("tokens", segments)], fmt=count)


def render_html(report: Report) -> str:
    month = period("Month", report.month)
    made = f"{report.made_at:%Y-%m-%d %H:%M} UTC"
    dated = (
        f"Covers {month}: the calls made in that calendar month (UTC, by each call's own time). "
        f"Made {made}."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Azure OpenAI chargeback {month}</title><style>{_CSS}</style></head><body>"
        f"<h1>Azure OpenAI chargeback {month}</h1>"
        f'<p class="sub" data-dated="{_esc(report.made_at.isoformat())}">{_esc(dated)}</p>'
        f'<p class="sub">{_esc(headline(report))}</p>'
        f'<div class="grid">{"".join(_charts(report, report.currency))}</div>'
        "<h2>Per business unit and application</h2>"
        f"{_html_table(report.applications, application_columns(report))}"
        "<h2>Per business unit</h2>"
        f"{_html_table([*report.business_units(), total_row(report)], unit_columns(report))}"
        f'<p class="note">{_esc(MONEY_RULE)}</p>'
        "</body></html>\n"
    )


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]
