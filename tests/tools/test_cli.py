"""The command line of CONTRACTS §3, run as a user runs it: in a fresh process."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.cli import run_cli as run

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "gateway-messages.jsonl"


def test_replay_jsonl_writes_one_event_per_billable_line(tmp_path: Path) -> None:
    result = run("replay", str(SAMPLES), "--sink", "jsonl", "--dead-letters", str(tmp_path))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 10
    for event in events:
        assert set(event) == {"name", "timestamp", "customDimensions", "customMeasurements"}
        assert event["name"] == "Azure OpenAI Tokens"
        assert all(isinstance(v, str) for v in event["customDimensions"].values())
        assert all(isinstance(v, float) for v in event["customMeasurements"].values())
    first = events[0]
    assert first["timestamp"] == "2026-11-17T10:15:00.000Z"
    assert first["customDimensions"]["RequestId"] == "5f0c8a4e-0000-4000-8000-000000000001"
    assert first["customMeasurements"]["TotalTokens"] == 23.0
    sources = [e["customDimensions"]["TokenSource"] for e in events]
    assert sources.count("estimated") == 2 and sources.count("event") == 1
    # Every line not emitted is reported with its reason, and the bad ones are kept.
    assert "line 9: skipped (duplicate-in-batch)" in result.stderr
    assert "line 10: skipped (status-429)" in result.stderr
    assert "line 13: dead-lettered (unidentifiable)" in result.stderr
    assert "line 14: dead-lettered (malformed)" in result.stderr
    assert "received=14 emitted=10 skipped=2 dead_lettered=2" in result.stderr
    kept = [p for p in tmp_path.rglob("*.json") if not p.name.endswith(".meta.json")]
    assert sorted(p.read_bytes() for p in kept) == sorted(SAMPLES.read_bytes().splitlines()[12:14])


def test_replay_reads_standard_input(tmp_path: Path) -> None:
    line = SAMPLES.read_bytes().splitlines()[0] + b"\n"
    result = run("replay", "-", "--sink", "jsonl", "--dead-letters", str(tmp_path), stdin=line)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1


def test_replay_into_the_local_store_then_query(tmp_path: Path) -> None:
    """What the local store holds, queried with the article's KQL, is what replay emitted."""
    db = tmp_path / "store.duckdb"
    result = run("replay", str(SAMPLES), "--db", str(db), "--dead-letters", str(tmp_path / "dl"))
    assert result.returncode == 0, result.stderr
    query = run("query", str(ROOT / "queries" / "article-usage-by-key.kql"), "--db", str(db))
    assert query.returncode == 0, query.stderr
    rows = {line.split()[0]: line.split()[1:] for line in query.stdout.splitlines()[2:]}

    emitted = run("replay", str(SAMPLES), "--sink", "jsonl", "--dead-letters", str(tmp_path))
    expected: dict[str, list[int]] = {}
    for line in emitted.stdout.splitlines():
        dimensions = json.loads(line)["customDimensions"]
        totals = expected.setdefault(dimensions["AppKey"], [0, 0, 0])
        for i, name in enumerate(("PromptTokens", "CompletionTokens", "TotalTokens")):
            totals[i] += int(dimensions[name])
    assert rows == {key: [str(n) for n in totals] for key, totals in expected.items()}
    # The calls billed on reported or carried usage, whatever the estimator does:
    assert rows["fin-chatXXXX"][0] != "0"
    assert rows["hrkey-01XXXX"] == ["120", "80", "200"]
    assert rows["legal-keXXXX"] == ["12", "12", "24"]
    assert rows["rnd-agenXXXX"] == ["273", "21", "294"]

    # The article's other query, its placeholder filled in with one caller's key.
    article = (ROOT / "queries" / "article-usage-for-key.kql").read_text()
    one_key = run("query", article.replace("your-client-key", "legal-ke"), "--db", str(db))
    assert one_key.returncode == 0, one_key.stderr
    lines = one_key.stdout.splitlines()
    assert lines[0].split() == [
        "Timestamp",
        "Stream",
        "ApiOperation",
        "PromptTokens",
        "CompletionTokens",
        "TotalTokens",
    ]
    assert [line.split()[1:] for line in lines[2:]] == [
        ["true", "chat.completion", "12", "12", "24"]
    ]


def test_bad_setting_names_the_setting(tmp_path: Path) -> None:
    env_line = SAMPLES.read_bytes().splitlines()[0]
    os.environ["CHARGEBACK_MAX_MESSAGE_BYTES"] = "lots"
    try:
        result = run("replay", "-", "--sink", "jsonl", stdin=env_line)
    finally:
        del os.environ["CHARGEBACK_MAX_MESSAGE_BYTES"]
    assert result.returncode == 2
    assert "app setting CHARGEBACK_MAX_MESSAGE_BYTES" in result.stderr


def test_query_takes_the_month_as_a_parameter(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    replay = run("replay", str(SAMPLES), "--db", str(db), "--dead-letters", str(tmp_path / "dl"))
    assert replay.returncode == 0, replay.stderr
    query = str(ROOT / "queries" / "tokens-by-business-unit.kql")

    def units(month: str) -> list[str]:
        result = run("query", query, "--db", str(db), "--param", f"ReportMonth={month}")
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[2:]

    assert (
        units("2026-11")
        and units("2026-11") == run("query", query, "--db", str(db)).stdout.splitlines()[2:]
    )
    assert units("2026-10") == []  # the samples are all November's calls
    bad = run("query", query, "--db", str(db), "--param", "ReportMonth=2026-13")
    assert (bad.returncode, bad.stderr) == (
        2,
        "query: --param ReportMonth wants YYYY-MM, not '2026-13'\n",
    )
