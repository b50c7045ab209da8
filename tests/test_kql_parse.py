"""Every query in queries/ parses with no diagnostics in the real Kusto parser, against the
customEvents schema."""

from __future__ import annotations

from pathlib import Path

from kusto_parser import check_kql, format_diagnostics

QUERIES = sorted((Path(__file__).parent.parent / "queries").glob("*.kql"))


def test_there_are_queries() -> None:
    names = {path.name for path in QUERIES}
    assert {"article-usage-by-key.kql", "article-usage-for-key.kql"} <= names
    assert len(QUERIES) >= 6


def test_every_query_parses_cleanly() -> None:
    texts = {path.name: path.read_text() for path in QUERIES}
    results = check_kql(texts)
    problems = {
        name: format_diagnostics(texts[name], diagnostics)
        for name, diagnostics in results.items()
        if diagnostics
    }
    assert problems == {}
    assert set(results) == set(texts)
