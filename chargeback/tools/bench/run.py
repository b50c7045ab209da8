"""``python -m chargeback bench``: what the Function spends against the work it cannot avoid.

The mixes are built from recorded exchanges (``tests/data/recorded-exchanges.jsonl`` by default,
``--corpus`` for another file of the same format; a small synthetic corpus when none is found),
wrapped as the APIM policy in ``infra/apim/chargeback-outbound.xml`` sends them
(`chargeback.tools.bench.mix` describes them). Measured in one run:

- **pipeline**: exactly what an invocation does, batches of 100: `Processor.process_batch` with
  the real `AzureMonitorSink`, its envelopes sent through the exporter's transport to an
  ingestion endpoint on localhost that parses and accepts them (another process); again with
  the local store (DuckDB) as the endpoint;
- **baseline**: the least work on the same messages (`chargeback.tools.bench.baseline`);
- **ratio**: the median of the per-repetition ratios of CPU seconds, both sides in turn;
- **throughput**: messages and MB a second per core (CPU seconds), and the Event Hubs
  throughput units one core keeps up with: a unit admits 1 MB/s or 1,000 events/s of ingress,
  whichever comes first ("Azure Event Hubs quotas and limits",
  https://learn.microsoft.com/azure/event-hubs/event-hubs-quotas; "Scaling with Event Hubs",
  https://learn.microsoft.com/azure/event-hubs/event-hubs-scalability), so a core that
  processes M MB/s and N messages/s keeps up with max(M, N / 1000) units;
- the same on the **small mix** (the event-count-bound case) and on the **conversation mix**,
  where estimation is also timed alone with and without the token-count cache;
- **cold start** and **peak memory** in fresh processes (`chargeback.tools.bench.processes`).

The last line reads ``bench: messages=N pipeline_mps=X baseline_mps=Y ratio=R cold_start_s=S
peak_mb=M`` (CONTRACTS §3).
"""

from __future__ import annotations

import os
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from chargeback.tools.bench.baseline import needs_bodies, prepare_baseline
from chargeback.tools.bench.corpus import load_corpus
from chargeback.tools.bench.endpoint import serve_endpoint
from chargeback.tools.bench.estimation import estimated_calls, time_estimates
from chargeback.tools.bench.measure import (
    Comparison,
    as_raw,
    compare,
    quiet,
    run_pipeline,
    split_batches,
)
from chargeback.tools.bench.mix import (
    BATCH_SIZE,
    DEFAULT_CORPUS,
    Sample,
    build_mix,
    conversation_mix,
    large_batch,
    small_mix,
)
from chargeback.tools.bench.processes import (
    child_env,
    cold_start_in_fresh_process,
    memory_in_fresh_process,
)
from chargeback.tools.bench.store import (
    TARGET_EVENTS_PER_SECOND,
    IngestRate,
    ReplayRates,
    ingest_rate,
    replay_rates,
)
from chargeback.tools.progress import Progress

__all__ = ["run"]

Say = Callable[[str], None]


def run(
    *,
    corpus: Path | None = DEFAULT_CORPUS,
    messages: int = 1000,
    repeat: int = 7,
    cold_runs: int = 5,
    memory_messages: int = 100,
    small_messages: int | None = None,
    conversations: int | None = None,
    turns: int = 10,
    seed: int = 7,
    store_events: int | None = None,
    store_messages: int | None = None,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark, print its report and return the figures of its last line. (Long: it
    reads as the report does, one stage after another, each a call; splitting it would only
    scatter the order of the report.)"""
    stream = out or sys.stdout
    quiet()
    with Progress("bench", total=len(STAGES), unit="stage") as progress:

        def say(line: str) -> None:
            progress.write(f"bench: {line}\n", stream)

        def stage(name: str) -> None:
            if name != STAGES[0]:
                progress.advance()
            progress.stage(name)

        stage("mix")
        say(_machine())
        records = load_corpus(corpus)
        samples, source = build_mix(records, messages, seed=seed)
        where = f"{corpus} ({len(records or [])} records)" if source == "corpus" else source
        _describe(say, "mix", samples, where)
        _warm_up()
        with serve_endpoint("accept", child_env()) as accept:
            main = _compare(say, "mix", samples, accept, repeat)
            stage("local store")
            with serve_endpoint("store", child_env()) as store:
                _compare(say, "mix, local store as the endpoint", samples, store, repeat)
                ingest = _store_ingest(say, samples, store_events or 20 * messages, store)
            replay = _store_replay(say, samples, store_messages or 5 * messages)
            stage("small mix")
            small = small_mix(records, small_messages or messages, seed=seed + 6)
            _describe(say, "small mix", small, "the smallest recorded calls with usage")
            _compare(say, "small mix", small, accept, repeat)
            stage("conversation mix")
            chats = conversations or max(1, messages // 20)
            talk = conversation_mix(records, chats, turns, seed=seed + 10)
            _describe(say, "conversation mix", talk, f"{chats} chats of {turns} turns")
            _compare(say, "conversation mix", talk, accept, repeat)
            _estimation(say, talk, repeat)
            stage("cold start")
            cold = _cold_start(say, [s.body for s in samples[:BATCH_SIZE]], cold_runs, accept)
            stage("memory")
            bodies = large_batch(records, max(1, memory_messages), seed=seed + 4)
            peak = _memory(say, bodies, accept)
            progress.advance()
    figures = {
        "messages": len(samples),
        "pipeline_mps": round(len(samples) / main.pipeline),
        "baseline_mps": round(len(samples) / main.baseline),
        "ratio": round(main.ratio, 3),
        "cold_start_s": round(cold, 3),
        "peak_mb": round(peak),
        "events": main.outcomes["emitted"],
        "expected_events": sum(1 for s in samples if s.expect == "emitted"),
        "store_ingest_eps": round(ingest.per_second),
        "store_replay_eps": round(replay.store_per_second),
        "jsonl_replay_eps": round(replay.jsonl_per_second),
    }
    stream.write("bench: " + " ".join(f"{key}={figures[key]}" for key in list(figures)[:6]) + "\n")
    stream.flush()
    return figures


#: What the progress bar names as it goes.
STAGES = ("mix", "local store", "small mix", "conversation mix", "cold start", "memory")


def _store_ingest(say: Say, samples: list[Sample], envelopes: int, connection: str) -> IngestRate:
    rate = ingest_rate(samples, envelopes, connection)
    verdict = "met" if rate.per_second >= TARGET_EVENTS_PER_SECOND else "NOT met"
    say(
        f"local store, ingest alone: {rate.envelopes} envelopes in {rate.seconds:.2f} s = "
        f"{rate.per_second:.0f} events/s (batches of {BATCH_SIZE} over HTTP into DuckDB, the "
        f"store in its own process; wall time; target {TARGET_EVENTS_PER_SECOND}/s: {verdict})"
    )
    return rate


def _store_replay(say: Say, samples: list[Sample], messages: int) -> ReplayRates:
    rates = replay_rates(samples, messages)
    say(
        f"local store, replay of {rates.messages} messages ({rates.events} events): into the "
        f"local store through the real exporter {rates.store_seconds:.2f} s = "
        f"{rates.store_per_second:.0f} events/s; into --sink jsonl {rates.jsonl_seconds:.2f} s "
        f"= {rates.jsonl_per_second:.0f} events/s (the store's replay takes "
        f"{rates.store_seconds / rates.jsonl_seconds:.1f}x as long; wall time, the store in the "
        "replaying process as `replay` runs it)"
    )
    return rates


def _machine() -> str:
    cores = os.cpu_count() or 0
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return (
        f"machine: {cores} cores, load average {load} at the start (CPU seconds are this "
        "process's own; other work on the machine still slows them through caches)"
    )


def _describe(say: Say, name: str, samples: list[Sample], where: str) -> None:
    size = sum(len(s.body) for s in samples)
    kinds = Counter(s.kind for s in samples)
    say(
        f"{name} from {where}: {len(samples)} messages, {size / 2**20:.1f} MB "
        f"(mean {size / max(1, len(samples)) / 1024:.1f} KB, largest "
        f"{max(len(s.body) for s in samples) / 1024:.0f} KB): "
        + ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items()))
    )


def _warm_up() -> None:
    from chargeback.tokens import get_encoding

    for name in ("o200k_base", "cl100k_base"):
        get_encoding(name)


def _compare(
    say: Say, name: str, samples: list[Sample], connection: str, repeat: int
) -> Comparison:
    """The pipeline against the baseline on ``samples``, and what it comes to per core."""
    import orjson

    from chargeback.emit import AzureMonitorSink

    raw = as_raw([s.body for s in samples])
    batches = split_batches(raw)
    baseline = prepare_baseline(raw, BATCH_SIZE)
    sink = AzureMonitorSink(connection, backoff_seconds=0)
    compare(lambda: run_pipeline(batches, sink), baseline, 1)  # warm both up
    result = compare(lambda: run_pipeline(batches, sink), baseline, repeat)
    sink.close()
    count, size = len(samples), sum(len(s.body) for s in samples) / 2**20
    per_second, megabytes = count / result.pipeline, size / result.pipeline
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(result.outcomes.items()))
    expected = sum(1 for s in samples if s.expect == "emitted")
    bodies = [needs_bodies(orjson.loads(s.body)) for s in samples]
    decoded = sum(1 for request, response in bodies if request or response)
    binds = "size" if megabytes >= per_second / 1000 else "event count"
    say(
        f"{name}: pipeline {_ms(result.pipeline_cpu)} CPU (wall {_ms(result.pipeline_wall)}) = "
        f"{per_second:.0f} msg/s and {megabytes:.1f} MB/s per core = "
        f"{max(megabytes, per_second / 1000):.1f} Event Hubs throughput units per core (by "
        f"{binds}; by event count alone {per_second / 1000:.1f}); {outcomes} (expected "
        f"emitted={expected})"
    )
    say(
        f"{name}: baseline {_ms(result.baseline_cpu)} CPU (wall {_ms(result.baseline_wall)}) = "
        f"{count / result.baseline:.0f} msg/s; bodies decoded for {decoded} of {count} "
        f"messages, {sum(len(w.texts) for b in baseline for w in b.work)} texts tokenized"
    )
    say(
        f"{name}: ratio pipeline/baseline {result.ratio:.2f} (median of {len(result.ratios)} "
        f"repetitions, {min(result.ratios):.2f}..{max(result.ratios):.2f})"
    )
    return result


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def _estimation(say: Say, talk: list[Sample], repeat: int) -> None:
    calls = estimated_calls(talk)
    found = time_estimates(calls, repeat)
    say(
        f"conversation mix, estimation alone ({found.calls} calls, {found.tokens} tokens): "
        f"{found.cached * 1000:.1f} ms with the token-count cache, {found.uncached * 1000:.1f} "
        f"ms without ({found.uncached / found.cached:.1f}x), CPU, median of {max(1, repeat)}"
    )


def _cold_start(say: Say, first: list[bytes], runs: int, connection: str) -> float:
    """Cold start through the real Functions runtime (the figure of the last line), and the
    same first batch without the runtime, both in fresh processes."""
    from chargeback.tools.functions_host import measure_cold_start

    starts = [measure_cold_start(first) for _ in range(max(1, runs))]
    total = statistics.median(s.first_invocation for s in starts)
    spread = ", ".join(f"{s.first_invocation:.2f}" for s in sorted(starts, key=_first))
    say(
        f"cold start through the Functions runtime: {total:.3f} s median of {len(starts)} "
        f"({spread}): a fresh worker process, azure-functions-runtime indexes function_app "
        f"({statistics.median(s.init for s in starts):.3f} s), the host's metadata and load, "
        f"then the first invocation, a batch of {len(first)} exported and accepted; a bare "
        f"`import azure.functions` in a fresh process "
        f"{statistics.median(s.import_azure_functions for s in starts):.3f} s (ratio "
        f"{statistics.median(s.ratio for s in starts):.1f})"
    )
    cold = cold_start_in_fresh_process(first, runs, connection)
    say(
        f"  without the runtime: {cold['total_s']:.3f} s (import function_app "
        f"{cold['import_s']:.3f} s, first batch {cold['batch_s']:.3f} s)"
    )
    return float(total)


def _first(start: Any) -> float:
    return float(start.first_invocation)


def _memory(say: Say, bodies: list[bytes], connection: str) -> float:
    memory = memory_in_fresh_process(bodies, connection)
    say(
        f"memory: a batch of {len(bodies)} messages ({memory['input_mb']:.1f} MB) through the "
        f"Function's processor and the real sink: peak RSS {memory['peak_mb']:.0f} MB (after "
        f"imports {memory['before_mb']:.0f} MB); Python heap peak during a batch "
        f"{memory['heap_peak_mb']:.1f} MB (tracemalloc)"
    )
    return float(memory["peak_mb"])
