"""Issue 14: a call that arrives in halves (the gateway message with its identity and bodies,
API Management's LLM log with the tokens, the GatewayLogs record with the caller) is billed once,
with one precedence for tokens (the API's own usage > the LLM log > our estimate) and identity from
whichever half names the caller; a half that never comes leaves the call counted, a redelivered
half adds nothing. Everything goes through the processor, the real exporter and the local store,
then every query of both packs (Application Insights and workspace)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chargeback.emit import AzureMonitorSink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.local.kql import run_kql
from chargeback.local.store import LocalStore
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import load_settings
from tests.support.accounting import assert_accounted
from tests.support.messages import v1_message
from tests.support.resource_logs import CALL, GATEWAY, LLM_CAMEL, message, renamed

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "queries"
SAMPLE_MAP = ROOT / "samples" / "identity-map.json"

# A streamed gpt-4o call whose stream carries no usage (record 309): the v1 message bills an
# estimate; its LLM log (LLM_CAMEL: 1523 + 211 tokens) bills what API Management counted.
STREAMED = CALL
BOTH = "b0000000-0000-4000-8000-00000000000b"  # API usage in the v1 message, and an LLM log
LLM_ONLY = "c0000000-0000-4000-8000-00000000000c"
GATEWAY_ONLY = "d0000000-0000-4000-8000-00000000000d"
SPLIT = "e0000000-0000-4000-8000-00000000000e"
UNMAPPED = "f0000000-0000-4000-8000-00000000000f"  # a caller the identity map does not know


def _batches(records: list[dict[str, Any]]) -> list[list[bytes]]:
    streamed, with_usage = records[309], records[1]  # gpt-4o stream; gpt-4o-mini, 12 + 12
    assert not streamed["usage"] and with_usage["usage"]["total_tokens"] == 24
    marketing = {"subscriptionId": "mkt-writer-91cc", "businessUnit": None}
    first = [
        v1_message(streamed, STREAMED, usage=False, model=False, **marketing),
        message(renamed(GATEWAY, apimSubscriptionId="mkt-writer-91cc")),  # STREAMED's caller
        v1_message(with_usage, BOTH),
        message(renamed(LLM_CAMEL, correlationId=BOTH, promptTokens=99, totalTokens=310)),
        message(renamed(LLM_CAMEL, correlationId=LLM_ONLY)),
        message(renamed(GATEWAY, correlationId=GATEWAY_ONLY, productId="research")),
        message(renamed(LLM_CAMEL, correlationId=UNMAPPED)),
        message(
            renamed(
                GATEWAY, correlationId=UNMAPPED, apimSubscriptionId="lab-sub-7", productId="lab"
            )
        ),
    ]
    response_part = renamed(
        LLM_CAMEL, correlationId=SPLIT, sequenceNumber=1, promptTokens=None,
        completionTokens=None, totalTokens=None,
    )  # fmt: skip
    second = [
        message(LLM_CAMEL),  # STREAMED's LLM log, in a later batch
        message(renamed(LLM_CAMEL, correlationId=SPLIT), response_part),
        message(renamed(LLM_CAMEL, correlationId=LLM_ONLY)),  # redelivered
        message({**GATEWAY, "category": "GatewayAccessLogs"}),  # a category we ignore
    ]
    return [first, second]


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]
) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("halves") / "store.duckdb"
    settings = load_settings(
        identity_map_file=SAMPLE_MAP,
        identity_order=("appId", "subscriptionId", "productId", "appKey"),
    )
    with LocalStore(path) as local:
        sink = AzureMonitorSink(local.connection_string)
        processor = Processor(settings, sink, MemoryDeadLetters())
        for number, batch in enumerate(_batches(records)):
            raws = [RawMessage(body, "0", 100 * number + i) for i, body in enumerate(batch)]
            report = processor.process_batch(raws)
            assert report.dead_lettered == 0, report.outcomes
        assert_accounted(report, 4)  # the second batch: four items, the split call counts once
        sink.close()
    yield path


def _rows(db: Path, name: str, workspace: bool = False) -> list[dict[str, Any]]:
    text = ((QUERIES / "workspace" if workspace else QUERIES) / name).read_text()
    result = run_kql(db, text)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_every_call_is_counted_once_with_the_best_tokens(store: Path) -> None:
    units = {row["BusinessUnit"]: row for row in _rows(store, "tokens-by-business-unit.kql")}
    # STREAMED: the LLM log's tokens (not the estimate), the caller from the gateway message.
    # BOTH: the API's own usage (12 + 12), not the LLM log's 99 + 211; charged to finance.
    # LLM_ONLY and SPLIT: the LLM log's tokens, no caller known. GATEWAY_ONLY: a call, 0 tokens.
    assert {unit: (r["Calls"], r["TotalTokens"]) for unit, r in units.items()} == {
        "marketing": (1, 1734),
        "finance": (1, 24),
        "unassigned": (3, 3 * 1734),
        "research": (1, 0),
    }


def test_a_caller_the_map_does_not_know_is_named_by_its_gateway_log(store: Path) -> None:
    """The LLM log names no one; the GatewayLogs record names a subscription the identity map
    does not list: the call goes to unassigned under that subscription's name, not nameless."""
    apps = {row["Application"]: row for row in _rows(store, "tokens-by-application.kql")}
    assert (apps["lab-sub-7"]["BusinessUnit"], apps["lab-sub-7"]["TotalTokens"]) == (
        "unassigned",
        1734,
    )


def test_the_queries_of_both_packs_agree(store: Path) -> None:
    for path in sorted(QUERIES.glob("*.kql")):
        if path.name.startswith("article-"):
            continue  # the article's queries read raw rows, halves and redeliveries included
        assert _rows(store, path.name) == _rows(store, path.name, workspace=True), path.name


def test_data_quality_shows_where_the_tokens_came_from(store: Path) -> None:
    (row,) = (r for r in _rows(store, "data-quality.kql") if r["BusinessUnit"] == "research")
    assert (row["Calls"], row["CallsWithoutTokens"], row["UnpricedCalls"]) == (1, 1, 1)
    totals = {
        key: sum(r[key] for r in _rows(store, "data-quality.kql"))
        for key in ("Calls", "GatewayTokens", "EstimatedTokens", "CallsWithoutTokens")
    }
    assert totals == {
        "Calls": 6,
        "GatewayTokens": 4 * 1734,
        "EstimatedTokens": 0,  # the stream's estimate lost to its LLM log
        "CallsWithoutTokens": 1,
    }
