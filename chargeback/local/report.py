"""``python -m chargeback report``: the month's chargeback from the local store.

The numbers come from the query pack in ``queries/`` (the same KQL the workbook runs in Azure),
run on the local store with duckdb-kql. ``--html FILE`` writes one self-contained page
(`chargeback.local.html`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "APP_COLUMNS",
    "MONEY_COLUMNS",
    "QUERIES_DIR",
    "UNIT_COLUMNS",
    "Report",
    "Row",
    "build_report",
    "firmness_line",
    "headline",
    "money_table",
    "parse_month",
    "render_text",
]

#: The query pack, beside the package in the repository.
QUERIES_DIR = Path(__file__).resolve().parents[2] / "queries"

Row = dict[str, Any]


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
    from chargeback.local.kql import run_kql

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


MONEY_COLUMNS = {"PaygoCost", "PtuCost", "Cost"}


def money_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A query result as text, amounts with enough decimals to show (the demo's tables)."""
    records = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        for key, value in record.items():
            if isinstance(value, datetime) and key in ("Month", "Day"):
                record[key] = f"{value:%Y-%m}" if key == "Month" else f"{value:%Y-%m-%d}"
        records.append(record)
    money = {name for name in columns if name in MONEY_COLUMNS or name.endswith("Cost")}
    return _table(records, [(name, name) for name in columns], money)


APP_COLUMNS = [
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
UNIT_COLUMNS = [
    ("BusinessUnit", "BusinessUnit"),
    ("CostCenter", "CostCenter"),
    ("Calls", "Calls"),
    ("TotalTokens", "Tokens"),
    ("PaygoCost", "PayAsYouGo"),
    ("PtuCost", "PtuCost"),
    ("Cost", "Cost"),
    ("UnpricedCalls", "UnpricedCalls"),
]


def headline(report: Report) -> str:
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


def firmness_line(report: Report) -> str:
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
        headline(report),
        "",
        "Per business unit and application",
        _table(report.applications, APP_COLUMNS, MONEY_COLUMNS),
        "",
        "Per business unit",
        _table([*report.business_units(), totals], UNIT_COLUMNS, MONEY_COLUMNS),
        "",
        firmness_line(report),
    ]
    return "\n".join(parts) + "\n"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    from chargeback.local.html import render_html as render

    return render(report)
