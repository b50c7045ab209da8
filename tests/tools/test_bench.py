"""The benchmark runs, on a tiny mix, and reports in the contract's form (no timing asserted)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from chargeback.emit import MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.pipeline import Processor
from chargeback.settings import load_settings
from chargeback.tools import bench
from chargeback.tools.bench import mix
from chargeback.tools.bench.measure import as_raw

CORPUS = Path(__file__).resolve().parents[1] / "data" / "recorded-exchanges.jsonl"
LAST_LINE = re.compile(
    r"^bench: messages=(\d+) pipeline_mps=(\d+) baseline_mps=(\d+) ratio=([\d.]+) "
    r"cold_start_s=([\d.]+) peak_mb=(\d+)$"
)


def test_bench_reports_in_the_contract_form_and_the_pipeline_emits_every_event() -> None:
    out = io.StringIO()
    figures = bench.run(
        corpus=CORPUS, messages=60, repeat=1, cold_runs=1, memory_messages=3, out=out
    )
    lines = out.getvalue().splitlines()
    assert all(line.startswith("bench: ") for line in lines)
    found = LAST_LINE.match(lines[-1])
    assert found, lines[-1]
    assert int(found.group(1)) == 60
    assert float(found.group(4)) > 0
    assert figures["events"] == figures["expected_events"] > 0
    assert any("cold start" in line for line in lines)
    assert any("peak RSS" in line for line in lines)
    # The local store's rate, alone and against --sink jsonl in the same run (issue 12).
    assert any(
        line.startswith("bench: local store, ingest alone: 1200 envelopes") for line in lines
    )
    replay = next(line for line in lines if line.startswith("bench: local store, replay of 300"))
    assert "into the local store through the real exporter" in replay
    assert "into --sink jsonl" in replay
    assert figures["store_ingest_eps"] > 0 and figures["jsonl_replay_eps"] > 0


def test_the_mix_holds_every_kind_and_is_processed_as_expected() -> None:
    samples, source = bench.build_mix(bench.load_corpus(CORPUS), 100)
    assert source == "corpus"
    assert {kind for kind, _ in mix.MIX} <= {s.kind for s in samples}
    sink = MemorySink()
    report = Processor(load_settings(), sink, MemoryDeadLetters()).process_batch(
        as_raw([s.body for s in samples])
    )
    assert report.emitted == sum(1 for s in samples if s.expect == "emitted")
    assert report.dead_lettered == 0
    sources = {event.dimensions["TokenSource"] for event in sink.events}
    assert sources == {"usage", "estimated"}
    assert max(len(s.body) for s in samples) <= mix.POLICY_LIMIT


def test_without_a_corpus_a_synthetic_mix_is_used() -> None:
    samples, source = bench.build_mix(bench.load_corpus(Path("no-such-file.jsonl")), 50)
    assert source == "synthetic"
    report = Processor(load_settings(), MemorySink(), MemoryDeadLetters()).process_batch(
        as_raw([s.body for s in samples])
    )
    assert report.emitted == sum(1 for s in samples if s.expect == "emitted")
    assert report.dead_lettered == 0


def test_large_batch_messages_are_near_the_limit() -> None:
    bodies = bench.large_batch(bench.load_corpus(CORPUS), 6)
    assert all(150 * 1024 < len(body) <= mix.POLICY_LIMIT for body in bodies)
