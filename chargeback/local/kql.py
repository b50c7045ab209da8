"""KQL on the local store, with duckdb-kql: the same queries that run in Log Analytics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chargeback.errors import UserError

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
    """Run one KQL query on a local store file, read-only. A store that is not there, or a
    query that does not run, raises `UserError` saying which."""
    import duckdb
    import duckdb_kql

    from chargeback.local.store import _open

    if not text.strip():
        raise UserError("the query is empty")
    path = Path(db_path)
    if not path.is_file():
        raise UserError(
            f"no local store at {path}: run `python -m chargeback demo` or `replay` first, or"
            " name one with --db"
        )
    try:
        con = _open(path, read_only=True)
    except duckdb.Error:
        raise UserError(f"{path} is not a local store (not a DuckDB database)") from None
    try:
        relation = duckdb_kql.kql(con, text, parameters=parameters)
        dynamic = frozenset(i for i, kind in enumerate(relation.types) if str(kind) == "JSON")
        return QueryResult(list(relation.columns), relation.fetchall(), dynamic)
    except (duckdb_kql.errors.KqlError, duckdb.Error) as exc:
        # The engine's own words, first line: which column, table or token is wrong.
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the query does not run: {problem}") from None
    finally:
        con.close()
