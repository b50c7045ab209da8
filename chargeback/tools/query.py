"""``query`` and ``report``: KQL and the month's chargeback, on the local store."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from chargeback.errors import UserError
from chargeback.tools.replay import DEFAULT_DB

__all__ = ["add_parser", "declared_parameters", "parse_parameters"]


def add_parser(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="run KQL on the local store",
        description="Run KQL (a .kql file or the text itself) on the local store with duckdb-kql, "
        "the same queries that run in Application Insights and Log Analytics.",
    )
    query.add_argument("queries", nargs="+", help="a .kql file or KQL text")
    query.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"local store (default: {DEFAULT_DB})"
    )
    query.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a value for the query's declare query_parameters (e.g. ReportMonth=2026-11,"
        " PtuMonthlyCost=10950)",
    )
    query.set_defaults(run=run_query)

    report = commands.add_parser(
        "report",
        help="print the month's chargeback from the local store",
        description="Print the month's chargeback per business unit and application from the "
        "local store, and optionally write a self-contained HTML page with the same figures.",
    )
    report.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"local store (default: {DEFAULT_DB})"
    )
    report.add_argument(
        "--month", type=_month, help="YYYY-MM (default: the latest month in the store)"
    )
    report.add_argument(
        "--ptu-monthly-cost",
        type=_amount,
        default=0.0,
        help="the month's provisioned throughput bill, shared out by tokens",
    )
    report.add_argument(
        "--ptu-output-weight",
        type=_amount,
        default=1.0,
        help="input tokens one output token counts as in the PTU share (Azure: 4 for gpt-4.1+)",
    )
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    report.add_argument("--queries", type=Path, default=None, help="the query pack directory")
    report.set_defaults(run=run_report)


def run_query(args: argparse.Namespace) -> int:
    from chargeback.local.kql import run_kql

    parameters = parse_parameters(args.param or [])
    texts = [(name, _query_text(name)) for name in args.queries]
    _check_declared(parameters, [text for _, text in texts])
    for name, text in texts:
        if len(texts) > 1:
            print(f"\n# {Path(name).name if text is not name else 'query'}")
        print(run_kql(args.db, text, declared_parameters(text, parameters)).table())
    return 0


def _check_declared(parameters: dict[str, Any], texts: list[str]) -> None:
    """A --param that no query declares is a mistake (a typo would otherwise be ignored)."""
    if not parameters:
        return
    import duckdb_kql

    declared: set[str] = set()
    for text in texts:
        try:
            declared.update(d.name for d in duckdb_kql.query_parameters(text))
        except duckdb_kql.errors.KqlError:
            continue  # the query itself is wrong: run_kql says how
    unknown = sorted(set(parameters) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise UserError(
            f"--param {', '.join(unknown)}: no query here declares it (they declare: {known})"
        )


def _query_text(name: str) -> str:
    """A .kql file's text, or the argument itself when it is KQL text."""
    if "\n" in name or "|" in name or not name.strip():
        return name
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None


def parse_parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; a value that reads as a number is a number. ``ReportMonth`` (the
    query packs' month) is text and must be ``YYYY-MM``."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--param wants NAME=VALUE, not {pair!r}")
        if name == "ReportMonth":
            if value and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
                raise UserError(f"--param ReportMonth wants YYYY-MM, not {value!r}")
            values[name] = value
            continue
        if name in _PTU_NUMBERS:
            values[name] = _ptu_number(name, value)
            continue
        try:
            values[name] = float(value) if "." in value else int(value)
        except ValueError:
            values[name] = value
    return values


#: The PTU parameters: the bill is 0 or more (no negative bill), an output token's weight
#: more than 0.
_PTU_NUMBERS = {"PtuMonthlyCost": "0 or more", "PtuOutputWeight": "more than 0"}


def _ptu_number(name: str, text: str) -> float:
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = math.nan
    fits = value > 0 if name == "PtuOutputWeight" else value >= 0
    if not fits or math.isinf(value):
        raise UserError(f"--param {name} wants a number, {_PTU_NUMBERS[name]}, not {text!r}")
    return value


def declared_parameters(text: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters this query declares (``declare query_parameters``); others are left out,
    so one set of values can serve a whole list of queries."""
    if not parameters:
        return None
    import duckdb_kql

    names = {declaration.name for declaration in duckdb_kql.query_parameters(text)}
    return {name: value for name, value in parameters.items() if name in names} or None


def _month(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month as YYYY-MM: {text!r}") from None


def _amount(text: str) -> float:
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def run_report(args: argparse.Namespace) -> int:
    from chargeback.local import report

    if args.html and not Path(args.html).resolve().parent.is_dir():
        raise UserError(f"cannot write {args.html}: its folder does not exist")
    built = report.build_report(
        args.db,
        month=args.month,
        ptu_monthly_cost=args.ptu_monthly_cost,
        ptu_output_weight=args.ptu_output_weight,
        queries=args.queries or report.QUERIES_DIR,
    )
    if built is None:
        sys.stderr.write(f"report: no chargeback events in {args.db}\n")
        return 1
    sys.stdout.write(report.render_text(built))
    if args.html:
        Path(args.html).write_text(report.render_html(built), encoding="utf-8")
        sys.stderr.write(f"report: wrote {args.html}\n")
    return 0
