"""KQL on the local store, with duckdb-kql: the same queries that run in Log Analytics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["QueryResult", "run_kql"]


class QueryResult:
    def __init__(
        self,
        columns: list[str],
        rows: list[tuple[Any, ...]],
        dynamic: frozenset[int] = frozenset(),
    ):
        self.columns = columns
        self.rows = rows
        #: Positions of the dynamic (JSON) columns, shown as Kusto shows them.
        self.dynamic = dynamic

    def table(self) -> str:
        """The result as an aligned text table."""
        cells = [self.columns] + [
            [_cell(value, i in self.dynamic) for i, value in enumerate(row)] for row in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
            for row in cells
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any, dynamic: bool = False) -> str:
    if value is None:
        return ""
    if dynamic and isinstance(value, str):
        # A dynamic string shows without its JSON quotes, as in Log Analytics.
        decoded = json.loads(value)
        return decoded if isinstance(decoded, str) else json.dumps(decoded)
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    return str(value)


def run_kql(
    db_path: Path | str, text: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run one KQL query on a local store file, read-only."""
    import duckdb_kql

    from chargeback.local.store import _open

    con = _open(Path(db_path), read_only=True)
    try:
        relation = duckdb_kql.kql(con, text, parameters=parameters)
        dynamic = frozenset(i for i, kind in enumerate(relation.types) if str(kind) == "JSON")
        return QueryResult(list(relation.columns), relation.fetchall(), dynamic)
    finally:
        con.close()
