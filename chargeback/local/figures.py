"""How every view shows a figure: ``query``, ``demo``, ``report`` and its HTML page call these
functions, so the same number reads the same everywhere (issue 12).

**Money** (`money`): to the cent, rounded half up, with thousands separators: ``1,529.52``. An
amount that is not zero but under half a cent shows as ``< 0.01``, never as ``0.00``, which
would say the calls were free; exactly zero shows as ``0.00``. A total is added up before it is
rounded, so it can differ by a cent from the sum of the rounded amounts above it. The currency
is always named beside the amount: a ``Currency`` column in ``query`` and the demo, the column
titles and the headline of the report and its page.

**Shares** (`share`): a percentage with two decimals, ``86.03%``; under 0.005% but not zero:
``< 0.01%``. **Months** ``2026-11``, **days** ``2026-11-20`` (UTC). **Counts** (calls, tokens)
whole, with thousands separators: ``14,577``.

A column is money when its name ends in ``Cost`` and a share when it ends in ``Share`` (the
query packs name them so); ``Month`` and ``Day`` are calendar periods.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["MONEY_RULE", "cell", "count", "is_money", "is_share", "money", "period", "share"]

#: The rule in words, for the README and the report's page.
MONEY_RULE = (
    "Amounts are shown to the cent (rounded half up); an amount under half a cent that is not "
    "zero shows as < 0.01; totals are added up before rounding."
)

_CENT = Decimal("0.01")


def money(value: float | int | None) -> str:
    """An amount to the cent; ``< 0.01`` for a non-zero amount that would round to nothing."""
    if value is None:
        return ""
    if value == 0:
        return "0.00"
    if abs(value) < 0.005:
        return "< 0.01" if value > 0 else "> -0.01"
    # repr is the shortest decimal that is this float: 0.125 rounds up, as written.
    cents = Decimal(repr(float(value))).quantize(_CENT, rounding=ROUND_HALF_UP)
    return f"{cents:,}"


def share(value: float | None) -> str:
    """A fraction as a percentage with two decimals."""
    if value is None:
        return ""
    if value != 0 and abs(value) < 0.00005:
        return "< 0.01%"
    percent = Decimal(repr(float(value) * 100)).quantize(_CENT, rounding=ROUND_HALF_UP)
    return f"{percent}%"


def count(value: float | int | None) -> str:
    """Calls or tokens: whole, with thousands separators (a weighted token count keeps up to
    two decimals)."""
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def period(column: str, value: Any) -> str:
    """A ``Month`` as ``YYYY-MM``, a ``Day`` as ``YYYY-MM-DD``."""
    if not isinstance(value, date):
        return "" if value is None else str(value)
    return f"{value:%Y-%m}" if column == "Month" else f"{value:%Y-%m-%d}"


def is_money(column: str) -> bool:
    return column.endswith("Cost")


def is_share(column: str) -> bool:
    return column.endswith("Share")


def cell(column: str, value: Any, dynamic: bool = False) -> str:
    """One value of a result, as every view shows it."""
    if value is None:
        return ""
    if dynamic and isinstance(value, str):
        # A dynamic string shows without its JSON quotes, as in Log Analytics.
        decoded = json.loads(value)
        return decoded if isinstance(decoded, str) else json.dumps(decoded)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        if is_money(column):
            return money(value)
        if is_share(column):
            return share(value)
        if isinstance(value, int):
            return count(value)
        return _number(value)
    if column in ("Month", "Day") and isinstance(value, date):
        return period(column, value)
    return str(value)


def _number(value: float) -> str:
    """Any other real number: up to four decimals, else four significant digits."""
    if value.is_integer():
        return f"{value:,.0f}"
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.4g}"
