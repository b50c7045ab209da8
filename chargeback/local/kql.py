"""KQL on the local store, with duckdb-kql: the same queries that run in Log Analytics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargeback.errors import UserError
from chargeback.local.figures import cell

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
        """The result as an aligned text table, every value as `chargeback.local.figures`
        shows it (money to the cent, shares as percentages, months as YYYY-MM); numbers are
        aligned right."""
        cells = [self.columns] + [
            [
                cell(name, value, i in self.dynamic)
                for i, (name, value) in enumerate(zip(self.columns, row, strict=True))
            ]
            for row in self.rows
        ]
        numeric = [
            any(
                isinstance(row[i], int | float) and not isinstance(row[i], bool)
                for row in self.rows
            )
            for i in range(len(self.columns))
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [
            "  ".join(
                value.rjust(width) if right else value.ljust(width)
                for value, width, right in zip(row, widths, numeric, strict=True)
            )
            for row in cells
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(line.rstrip() for line in lines)


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
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise UserError(
                f"the local store {path} is busy: another process is writing to it (a `store` or"
                " a `replay`); try again when it is done"
            ) from None
        raise UserError(f"{path} is not a local store (not a DuckDB database)") from None
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
