"""Issue 12: every ordinary mistake at the command line is one line saying what is wrong and what
to do, and a non-zero exit; never a traceback (``--debug`` shows one). Each runs as a user runs
it: ``python -m chargeback ...`` in a fresh process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli as run

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "gateway-messages.jsonl"
PTU = ROOT / "queries" / "ptu-share-out.kql"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a local store holding the samples, and a file that is not a store."""
    folder = tmp_path_factory.mktemp("mistakes")
    replayed = run("replay", str(SAMPLES), "--db", "store.duckdb", cwd=folder)
    assert replayed.returncode == 0, replayed.stderr
    (folder / "not-a-store.duckdb").write_text("hello")
    return folder


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


MISTAKES: dict[str, tuple[list[str], str]] = {
    "replay a missing file": (["replay", "nope.jsonl"], "cannot read nope.jsonl"),
    "replay a folder": (["replay", "."], "is a folder"),
    "replay nothing": (["replay"], "say what to replay"),
    "replay negative retries": (["replay", "x", "--retries", "-1"], "must be 0 or more"),
    "query a missing file": (["query", "nope.kql", "--db", "store.duckdb"], "cannot read"),
    "accuracy a missing file": (["accuracy", "nope.jsonl"], "cannot read nope.jsonl"),
    "accuracy a folder": (["accuracy", "."], "is a folder"),
    "KQL syntax error": (
        ["query", "customEvents | wher x", "--db", "store.duckdb"],
        "the query does not run",
    ),
    "unknown column": (
        ["query", "customEvents | project nocolumn", "--db", "store.duckdb"],
        "the query does not run",
    ),
    "unknown table": (
        ["query", "nosuchtable | take 1", "--db", "store.duckdb"],
        "the query does not run",
    ),
    "empty query": (["query", "", "--db", "store.duckdb"], "the query is empty"),
    "no store": (["query", "customEvents | take 1", "--db", "nope.duckdb"], "no local store"),
    "not a store": (
        ["query", "customEvents | take 1", "--db", "not-a-store.duckdb"],
        "is not a local store",
    ),
    "bad --param value": (
        ["query", str(PTU), "--db", "store.duckdb", "--param", "PtuMonthlyCost=abc"],
        "--param PtuMonthlyCost wants a number, 0 or more, not 'abc'",
    ),
    "negative PTU bill in a query": (
        ["query", str(PTU), "--db", "store.duckdb", "--param", "PtuMonthlyCost=-5"],
        "--param PtuMonthlyCost wants a number, 0 or more, not '-5'",
    ),
    "PTU output weight of 0": (
        ["query", str(PTU), "--db", "store.duckdb", "--param", "PtuOutputWeight=0"],
        "--param PtuOutputWeight wants a number, more than 0, not '0'",
    ),
    "--param without =": (
        ["query", str(PTU), "--db", "store.duckdb", "--param", "PtuMonthlyCost"],
        "--param wants NAME=VALUE",
    ),
    "unknown --param": (
        ["query", str(PTU), "--db", "store.duckdb", "--param", "PtuMonthlyCots=5"],
        "no query here declares it",
    ),
    "month 13": (["report", "--month", "2026-13", "--db", "store.duckdb"], "not a month"),
    "negative PTU bill": (
        ["report", "--ptu-monthly-cost", "-5", "--db", "store.duckdb"],
        "must be 0 or more",
    ),
    "HTML into a missing folder": (
        ["report", "--db", "store.duckdb", "--html", "nodir/x.html"],
        "its folder does not exist",
    ),
    "store on a port out of range": (["store", "--port", "99999"], "a port is 1 to 65535"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_and_a_failure(workdir: Path, mistake: str) -> None:
    argv, expected = MISTAKES[mistake]
    result = run(*argv, cwd=workdir)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or result.stderr.startswith("usage:")
    assert expected in result.stderr, result.stderr


def test_a_port_in_use_says_so(workdir: Path, taken_port: int) -> None:
    result = run("store", "--port", str(taken_port), "--db", "s.duckdb", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"store: cannot listen on port {taken_port}: Address already in use"
        " (choose another with --port)"
    ]


def test_a_garbage_connection_string_names_the_setting(workdir: Path) -> None:
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "garbage-value-4711"}
    result = run("replay", str(SAMPLES), "--sink", "jsonl", cwd=workdir, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in line
    assert "garbage-value-4711" not in line  # the value itself is never echoed


def test_a_wrong_service_uri_names_that_setting(workdir: Path) -> None:
    env = {"DeadLetterStorage__serviceUri": "blob.core.windows.net"}
    result = run("replay", "--from-container", cwd=workdir, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "replay: DeadLetterStorage__serviceUri is not a blob endpoint URL"
        " (https://<account>.blob.core.windows.net/)"
    ]


def test_debug_shows_the_traceback(workdir: Path) -> None:
    result = run("--debug", "query", "", "--db", "store.duckdb", cwd=workdir)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UserError: the query is empty" in result.stderr
