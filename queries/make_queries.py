"""Builds the two query packs from the one source in queries/src/:

- ``queries/*.kql``, for the Application Insights resource (its Logs blade, ``customEvents``);
- ``queries/workspace/*.kql``, for the Log Analytics workspace behind it (``AppEvents``).

Each query of ``queries/src/`` is its comments, its own ``declare query_parameters`` (if any)
and a body that reads ``ChargebackCalls``, the one definition of a chargeback call in
``queries/src/prelude/``. A pack's query is: the comments, one ``declare query_parameters``
(``ReportMonth``, in the workspace ``AppInsightsResourceId``, then the query's own), the month
(``period.kql``), in the workspace the adapter that gives AppEvents the Application Insights
column names (``workspace.kql``), the calls (``calls.kql``), for a query that reads
``BilledCalls`` the PTU bill shared out call by call (``ptu.kql``, whose parameters the query
declares), the body. The two queries of the
Azure OpenAI chargeback article are copied byte for byte into the Application Insights pack; the
workspace pack carries them with only the adapter added. Run from the repo root after changing a
source:

    python queries/make_queries.py

tests/test_queries.py fails when a pack is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "queries" / "src"
PRELUDE = SOURCE / "prelude"
APPINSIGHTS = ROOT / "queries"
WORKSPACE = ROOT / "queries" / "workspace"
ARTICLE_PREFIX = "article-"

MONTH_PARAMETER = 'ReportMonth:string = ""'
RESOURCE_PARAMETER = 'AppInsightsResourceId:string = ""'
_DECLARE = re.compile(r"declare query_parameters\((?P<parameters>[^\n]*)\);\n")
# The adapter's time filter: the article queries, which filter on no month, go without it.
_TIME_FILTER = "    | where TimeGenerated >= Since\n"


def _generated(name: str) -> str:
    return (
        f"// Generated from queries/src/{name} by queries/make_queries.py: edit the source and"
        " run it.\n"
    )


def _split(text: str) -> tuple[str, str, str]:
    """(leading comment lines, the declared parameters or "", the body)."""
    lines = text.splitlines(keepends=True)
    count = next((i for i, line in enumerate(lines) if not line.startswith("//")), len(lines))
    header, rest = "".join(lines[:count]), "".join(lines[count:])
    match = _DECLARE.match(rest)
    if match is None:
        return header, "", rest
    return header, match.group("parameters"), rest[match.end() :]


def _declare(*parameters: str) -> str:
    return f"declare query_parameters({', '.join(p for p in parameters if p)});\n"


def _prelude(name: str) -> str:
    return (PRELUDE / name).read_text(encoding="utf-8")


def render_query(name: str, text: str) -> tuple[str, str]:
    """(the Application Insights query, the workspace query) of one source query."""
    header, parameters, body = _split(text)
    if name.startswith(ARTICLE_PREFIX):
        # Byte for byte in the Application Insights pack; the adapter alone in the workspace's.
        adapter = _prelude("workspace.kql").replace(_TIME_FILTER, "")
        workspace = header + _generated(name) + _declare(RESOURCE_PARAMETER) + adapter + body
        return text, workspace
    period, calls = _prelude("period.kql"), _prelude("calls.kql")
    if "BilledCalls" in body:  # a query with a PTU share: the one definition of it
        calls += _prelude("ptu.kql")
    appinsights = (
        header + _generated(name) + _declare(MONTH_PARAMETER, parameters) + period + calls + body
    )
    workspace = (
        header
        + _generated(name)
        + _declare(MONTH_PARAMETER, RESOURCE_PARAMETER, parameters)
        + period
        + _prelude("workspace.kql")
        + calls
        + body
    )
    return appinsights, workspace


def render() -> dict[Path, str]:
    """Every generated file and its text."""
    out: dict[Path, str] = {}
    for source in sorted(SOURCE.glob("*.kql")):
        appinsights, workspace = render_query(source.name, source.read_text(encoding="utf-8"))
        out[APPINSIGHTS / source.name] = appinsights
        out[WORKSPACE / source.name] = workspace
    return out


def main() -> int:
    WORKSPACE.mkdir(parents=True, exist_ok=True)
    for path, text in render().items():
        path.write_text(text, encoding="utf-8", newline="\n")
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
