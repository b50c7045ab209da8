"""Check KQL text with the real Kusto parser (npm @kusto/language-service-next).

``check_kql`` sends every query to ONE ``node tests/kusto/check.js`` process and
returns the parser's syntax + semantic diagnostics per query name. The schema the
queries are bound against is Application Insights ``customEvents``
(``chargeback/data/customEvents.schema.json``) or, for the workspace pack, the workspace's
``AppEvents`` (``chargeback/data/AppEvents.schema.json``); the local store creates its DuckDB
tables from the same files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

KUSTO_DIR = Path(__file__).resolve().parents[1] / "kusto"
CHECK_JS = KUSTO_DIR / "check.js"
SCHEMA_PATH = KUSTO_DIR.parent.parent / "chargeback" / "data" / "customEvents.schema.json"
#: The Log Analytics workspace's AppEvents, for the workspace query pack and workbook.
APPEVENTS_SCHEMA_PATH = SCHEMA_PATH.with_name("AppEvents.schema.json")
_LIBRARY = KUSTO_DIR / "node_modules" / "@kusto" / "language-service-next"
INSTALL_HINT = "run `npm ci --prefix tests/kusto` (from the repo root) to install the Kusto parser"


class KustoHarnessError(RuntimeError):
    """The harness could not run (node or the npm package missing, check.js failed)."""


def ensure_installed(library: Path = _LIBRARY) -> str:
    """Return the path of ``node``; raise (never skip) if node or the package is missing."""
    node = shutil.which("node")
    if node is None:
        raise KustoHarnessError(f"`node` is not on PATH; install Node.js 20+, then {INSTALL_HINT}")
    if not (library / "package.json").is_file():
        raise KustoHarnessError(f"{library} is missing: {INSTALL_HINT}")
    return node


def load_schema(path: Path = SCHEMA_PATH) -> tuple[str, list[tuple[str, str]]]:
    """Return ``(table, [(column, kusto_type), ...])`` in declared column order."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc["table"], [(c["name"], c["type"]) for c in doc["columns"]]


def check_kql(
    queries: dict[str, str],
    schema: Path | dict[str, Any] | list[dict[str, Any]] = SCHEMA_PATH,
    timeout: float = 120.0,
) -> dict[str, list[dict[str, Any]]]:
    """Parse and analyze each query; return ``{name: [diagnostic, ...]}``.

    A diagnostic is ``{"severity", "message", "start", "length", "code"}``; an
    empty list means the query is clean (no syntax or semantic problems).
    """
    node = ensure_installed()
    request = {
        "schema": str(schema) if isinstance(schema, Path) else schema,
        "queries": [{"name": name, "text": text} for name, text in queries.items()],
    }
    proc = subprocess.run(
        [node, str(CHECK_JS)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise KustoHarnessError(f"check.js exited with {proc.returncode}: {proc.stderr.strip()}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return {r["name"]: r["diagnostics"] for r in results}


def format_diagnostics(text: str, diagnostics: list[dict[str, Any]]) -> str:
    """Human-readable diagnostics with line:column and the offending snippet (for assert messages)."""
    lines = []
    for d in diagnostics:
        start = int(d["start"])
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        snippet = text[start : start + max(int(d["length"]), 1)]
        lines.append(f"{d['severity']} {d['code']} at {line}:{col} {snippet!r}: {d['message']}")
    return "\n".join(lines)
