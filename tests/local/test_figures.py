"""One way to show a figure (issue 12): the rule `chargeback.local.figures` states, which
``query``, the demo, ``report`` and its page all call."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from chargeback.local.figures import cell, count, money, share
from chargeback.local.kql import QueryResult


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "0.00"),
        (0.0, "0.00"),
        (0.000026, "< 0.01"),  # the 0.000026 that showed as 0.0000
        (0.004999, "< 0.01"),
        (0.005, "0.01"),  # half a cent rounds up
        (0.0056, "0.01"),
        (1529.52447, "1,529.52"),
        (1529.525, "1,529.53"),  # half up, as written, not the binary float's half-even
        (10950, "10,950.00"),
        (9420.47631, "9,420.48"),
        (-0.001, "> -0.01"),
        (-12.345, "-12.35"),
        (None, ""),
    ],
)
def test_money_is_to_the_cent_with_a_rule_for_less_than_a_cent(
    amount: float | None, shown: str
) -> None:
    assert money(amount) == shown


def test_shares_are_percentages_with_two_decimals() -> None:
    assert [share(v) for v in (0.8603, 0.1397, 0.0, 1.0, 0.66666, 0.00004)] == [
        "86.03%",
        "13.97%",
        "0.00%",
        "100.00%",
        "66.67%",
        "< 0.01%",
    ]


def test_counts_months_and_days() -> None:
    assert [count(v) for v in (14577, 0, 7000.0, 7000.5)] == ["14,577", "0", "7,000", "7,000.5"]
    assert cell("Month", datetime(2026, 11, 1)) == "2026-11"
    assert cell("Day", datetime(2026, 11, 20)) == "2026-11-20"
    assert cell("Month", date(2026, 11, 1)) == "2026-11"


def test_a_query_result_shows_each_column_by_its_rule() -> None:
    """The `query` table: the issue's months as 2026-11-01 00:00:00, costs to 4 decimals
    (0.000026 as 0.0000) and the PTU share as 0.8603."""
    result = QueryResult(
        ["Month", "BusinessUnit", "Calls", "PaygoCost", "PtuShare", "Cost", "Currency"],
        [
            (datetime(2026, 11, 1), "research", 2, 0.00012, 0.8603, 9420.47631, "USD"),
            (datetime(2026, 11, 1), "marketing", 1234, 0.000026, 0.0, 0.000026, "USD"),
        ],
    )
    assert result.table().splitlines() == [
        "Month    BusinessUnit  Calls  PaygoCost  PtuShare      Cost  Currency",
        "-------  ------------  -----  ---------  --------  --------  --------",
        "2026-11  research          2     < 0.01    86.03%  9,420.48  USD",
        "2026-11  marketing     1,234     < 0.01     0.00%    < 0.01  USD",
    ]
