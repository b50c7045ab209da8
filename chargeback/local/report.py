"""``python -m chargeback report``: the month's chargeback from the local store.

The numbers come from the query pack in ``queries/`` (the same KQL the workbook runs in Azure),
run on the local store with duckdb-kql, and are shown as `chargeback.local.figures` shows every
figure, in the text and in the self-contained page ``--html FILE`` writes
(`chargeback.local.html`). The PTU columns are there only when there is a PTU bill.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from chargeback.errors import UserError
from chargeback.local.figures import (
    MONEY_RULE,
    cell,
    count,
    is_money,
    is_share,
    money,
    period,
    share,
)

__all__ = [
    "QUERIES_DIR",
    "Column",
    "Report",
    "Row",
    "application_columns",
    "build_report",
    "firmness_line",
    "headline",
    "parse_month",
    "render_html",
    "render_text",
    "total_row",
    "unit_columns",
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
    #: cost-by-business-unit.kql rows of the month (the same PTU bill).
    units: list[Row] = field(default_factory=list)
    months: list[date] = field(default_factory=list)
    #: The deployment types the month's pay-as-you-go costs were priced at.
    deployment_types: list[str] = field(default_factory=list)
    #: When the report was made (UTC).
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def has_ptu(self) -> bool:
        """Whether a PTU bill was given: the PTU columns and segments show only then."""
        return self.ptu_monthly_cost > 0

    def business_units(self) -> list[Row]:
        """Per business unit and cost center, as cost-by-business-unit.kql gives them."""
        return sorted(self.units, key=lambda u: (-(u["Cost"] or 0), u["BusinessUnit"]))

    def totals(self) -> Row:
        names = ("Calls", "TotalTokens", "PaygoCost", "PtuCost", "Cost", "UnpricedCalls")
        total = {name: sum(row[name] or 0 for row in self.units) for name in names}
        # Added up before rounding (the figures' rule); 6 decimals as the queries keep them.
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in total.items()}

    def provisioned_tokens(self) -> int:
        return sum(row["ProvisionedTokens"] or 0 for row in self.units)

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
    now: datetime | None = None,
) -> Report | None:
    """The chargeback of ``month`` (default: the latest month in the store), every query run for
    that calendar month of the calls' own time (``ReportMonth``), made at ``now`` (default: the
    clock); None when the store holds no chargeback events. A negative bill is refused."""
    if not ptu_monthly_cost >= 0 or not ptu_output_weight > 0:
        raise UserError("the PTU bill must be 0 or more, and the output weight more than 0")
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
        units=_rows(db, queries, "cost-by-business-unit.kql", ptu),
        months=months,
        deployment_types=_listed(applications, "DeploymentTypes"),
        made_at=now or datetime.now(UTC),
    )


def _listed(rows: list[Row], column: str) -> list[str]:
    """The distinct names of a comma-separated column (PriceVersions, DeploymentTypes)."""
    return sorted({name for row in rows for name in str(row[column] or "").split(", ") if name})


# --- Text ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of the report's tables: the query's column and its title in words."""

    key: str
    title: str

    @property
    def numeric(self) -> bool:
        return self.key in _NUMERIC or is_money(self.key) or is_share(self.key)


_NUMERIC = {"Calls", "TotalTokens", "UnpricedCalls"}


def _money_columns(report: Report) -> list[Column]:
    currency = report.currency
    if not report.has_ptu:  # pay-as-you-go is the whole cost
        return [Column("Cost", f"Cost ({currency})")]
    return [
        Column("PaygoCost", f"Pay-as-you-go ({currency})"),
        Column("PtuShare", "PTU share"),
        Column("PtuCost", f"PTU cost ({currency})"),
        Column("Cost", f"Cost ({currency})"),
    ]


def application_columns(report: Report) -> list[Column]:
    """The per-application table's columns; the PTU ones only when there is a PTU bill."""
    return [
        Column("BusinessUnit", "Business unit"),
        Column("CostCenter", "Cost center"),
        Column("Application", "Application"),
        Column("Calls", "Calls"),
        Column("TotalTokens", "Tokens"),
        *_money_columns(report),
        Column("UnpricedCalls", "Unpriced calls"),
    ]


def unit_columns(report: Report) -> list[Column]:
    """The per-business-unit table's columns (no share: a unit's is its applications')."""
    return [
        column
        for column in application_columns(report)
        if column.key not in ("Application", "PtuShare")
    ]


def total_row(report: Report) -> Row:
    return {"BusinessUnit": "Total", "CostCenter": "", **report.totals()}


def _table(rows: list[Row], columns: list[Column]) -> str:
    lines = [[column.title for column in columns]]
    lines += [[cell(column.key, row.get(column.key)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for index, line in enumerate(lines):
        out.append(
            "  ".join(
                text.rjust(width) if column.numeric else text.ljust(width)
                for text, width, column in zip(line, widths, columns, strict=True)
            ).rstrip()
        )
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def headline(report: Report) -> str:
    if report.has_ptu:
        ptu = f"PTU bill {money(report.ptu_monthly_cost)} {report.currency} shared out by tokens"
    elif report.provisioned_tokens():
        ptu = (
            f"no PTU bill given: {count(report.provisioned_tokens())} tokens of provisioned"
            " deployments cost nothing here (--ptu-monthly-cost)"
        )
    else:
        ptu = "no provisioned deployment used"
    return (
        f"Chargeback {period('Month', report.month)} in {report.currency}; "
        f"prices {', '.join(report.price_versions) or '(none)'} at "
        f"{', '.join(report.deployment_types) or '(no deployment type)'}; {ptu}"
    )


def firmness_line(report: Report) -> str:
    f = report.firmness()
    estimated = f["EstimatedTokens"] / f["TotalTokens"] if f["TotalTokens"] else 0.0
    return (
        f"How firm: {share(estimated)} of {count(f['TotalTokens'])} tokens estimated rather"
        f" than reported; {count(f['TruncatedCalls'])} of {count(f['Calls'])} calls truncated;"
        f" {count(f['UnpricedCalls'])} calls unpriced (model not in the price table, cost 0);"
        f" {count(f['UnassignedCalls'])} calls unassigned"
    )


def render_text(report: Report) -> str:
    parts = [
        headline(report),
        "",
        "Per business unit and application",
        _table(report.applications, application_columns(report)),
        "",
        "Per business unit",
        _table([*report.business_units(), total_row(report)], unit_columns(report)),
        "",
        firmness_line(report),
        MONEY_RULE,
    ]
    return "\n".join(parts) + "\n"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    from chargeback.local.html import render_html as render

    return render(report)
