"""``python -m chargeback bench``: how close the processor runs to the work it cannot avoid.

The mix is built from recorded exchanges (``tests/data/recorded-exchanges.jsonl`` by default,
``--corpus`` to choose another file of the same format; a small synthetic mix when no corpus is
found) wrapped as the APIM policy in ``infra/apim/chargeback-outbound.xml`` would send them: v1
messages, small fields first, ``usage`` and ``model`` copied out of the response where the policy
finds them, bodies trimmed so that the message stays under 200 KB. It holds:

- non-streaming chat, Responses and embeddings calls, with usage;
- chat streams with a usage chunk, and Responses streams (usage in ``response.completed``);
- chat streams without usage (``stream_options.include_usage`` not set): tokens are estimated;
- a few errors (4xx, skipped);
- a few messages near 200 KB: recorded calls with images or long reasoning streams, a long
  conversation, a long answer streamed without usage and a large embeddings input, all built from
  the corpus' own text and cut as the policy cuts them.

Measured in one run:

- **pipeline**: ``Processor(settings, MemorySink(), MemoryDeadLetters()).process_batch`` on
  batches of 100, the Function's own code path up to and including the event objects; the
  Application Insights exporter (serialisation and the network send) is not part of it;
- **baseline**: for the same messages, orjson decoding of the message, of its bodies (the usable
  prefix of a cut body; a stream's events joined into one JSON array and decoded in one call, as
  the pipeline decodes them, when the stream has the usual layout, else each ``data:`` line) and
  ``encode_ordinary`` of exactly the texts the estimator counted for that message (recorded from
  the pipeline itself);
- **ratio** = pipeline time / baseline time, each the fastest of ``--repeat`` interleaved runs.
  The pipeline does not decode a response body when the message carries the policy's copy of
  usage and model (the call is billed on it, CONTRACTS §1a; it only looks whether the body
  streams and was cut), while the baseline decodes every body: the report says how many
  messages carry it, and gives the ratio on the **needs-bodies subset** too, the messages
  without it, measured the same way;
- **cold start**: a fresh interpreter that imports ``function_app``, builds the Function's own
  processor (`chargeback.runtime.default_processor`: the Application Insights sink, with
  OpenTelemetry and the exporter, and Blob Storage dead letters, pointed at endpoints nothing
  listens on and never contacted) and processes a first batch of 100 messages, its events
  emitted into the sink but not exported (encodings load on the first estimate, so that cost is
  in); wall time from spawning the process; median of ``--cold-runs``. Also reported with an
  in-memory sink instead;
- **peak memory**: a fresh interpreter that imports ``function_app`` and processes one batch of
  ``--memory-messages`` messages of about 200 KB; the process's peak resident set (what the
  Function pays), and the Python heap's own peak (tracemalloc) for the batch alone.

The last line reads ``bench: messages=N pipeline_mps=X baseline_mps=Y ratio=R cold_start_s=S
peak_mb=M`` (CONTRACTS §3).
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from chargeback.tools.bench.measure import (
    as_raw,
    cold_start,
    measure,
    measure_memory,
    policy_copy,
    prepare_baseline,
    quiet,
    run_baseline,
    run_pipeline,
    split_batches,
)
from chargeback.tools.bench.mix import (
    BATCH_SIZE,
    DEFAULT_CORPUS,
    build_mix,
    large_batch,
    load_corpus,
)

# --- The command ----------------------------------------------------------------------------


def run(
    *,
    corpus: Path | None = DEFAULT_CORPUS,
    messages: int = 1000,
    repeat: int = 7,
    cold_runs: int = 5,
    memory_messages: int = 100,
    seed: int = 7,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark, print its report and return the figures of its last line."""
    stream = out or sys.stdout
    quiet()

    def say(line: str) -> None:
        stream.write(f"bench: {line}\n")
        stream.flush()

    from chargeback.tokens import get_encoding

    records = load_corpus(corpus)
    samples, source = build_mix(records, messages, seed=seed)
    raw = as_raw([s.body for s in samples])
    size = sum(len(s.body) for s in samples)
    kinds = Counter(s.kind for s in samples)
    where = f"{corpus} ({len(records or [])} records)" if source == "corpus" else source
    where += "" if source == "corpus" else " (no corpus found)"
    say(
        f"mix from {where}: {len(samples)} messages, {size / 2**20:.1f} MB, largest "
        f"{max(len(s.body) for s in samples) / 1024:.0f} KB"
    )
    say("  " + ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())))

    # Warm up: encodings loaded, code paths run once, the baseline's texts recorded.
    for name in ("o200k_base", "cl100k_base"):
        get_encoding(name)
    work = prepare_baseline(raw)
    batches = split_batches(raw)
    run_pipeline(batches)
    run_baseline(work)

    pipe_s, base_s, ratios, last = measure(batches, work, repeat)
    ratio = pipe_s / base_s
    counted = sum(len(w.texts) for w in work)
    counted_chars = sum(len(t) for w in work for _, t in w.texts)
    expected = sum(1 for s in samples if s.expect == "emitted")
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(last.outcomes.items()))
    sources = ", ".join(f"{k}={v}" for k, v in sorted(last.sources.items()))
    say(
        f"pipeline: {pipe_s * 1000:.1f} ms for {len(samples)} messages in batches of "
        f"{BATCH_SIZE} (fastest of {len(ratios)}; median "
        f"{statistics.median(last.all_seconds) * 1000:.1f} ms) = {len(samples) / pipe_s:.0f} msg/s"
    )
    say(f"  outcomes {outcomes} (expected emitted={expected}); token source {sources}")
    say(
        f"baseline: {base_s * 1000:.1f} ms (fastest of {len(ratios)}; median "
        f"{statistics.median(last.all_baseline) * 1000:.1f} ms) = {len(samples) / base_s:.0f} "
        f"msg/s; orjson on messages and bodies, encode_ordinary on {counted} texts "
        f"({counted_chars / 1024:.0f} K characters)"
    )

    # What the pipeline does not decode: the policy's usage bills the call (CONTRACTS §1a), so
    # with it (and its model) the response body is only looked at; the baseline decodes every
    # body all the same. The ratio on the messages without it shows the rest.
    policy = [policy_copy(s.body) for s in samples]
    billed = sum(1 for usage, _ in policy if usage)
    unread = sum(1 for usage, model in policy if usage and model)
    by_kind = Counter(s.kind for s, (usage, _) in zip(samples, policy, strict=True) if usage)
    say(
        f"policy usage in {billed} of {len(samples)} messages ({billed / len(samples):.0%}; "
        + ", ".join(f"{kind}={by_kind[kind]}/{kinds[kind]}" for kind in sorted(kinds))
        + f"): billed on it; with the policy's model too ({unread}) the pipeline does not decode "
        "the response body (it looks whether it streams and was cut); the baseline decodes "
        "every body"
    )
    say(
        f"ratio pipeline/baseline {ratio:.3f} (per repetition {min(ratios):.3f}.."
        f"{max(ratios):.3f}); event export to Application Insights not included"
    )
    needy = [i for i, (usage, _) in enumerate(policy) if not usage]
    if needy:
        sub_pipe, sub_base, sub_ratios, _ = measure(
            split_batches([raw[i] for i in needy]), [work[i] for i in needy], repeat
        )
        say(
            f"needs-bodies subset (no policy usage): {len(needy)} messages, pipeline "
            f"{sub_pipe * 1000:.1f} ms, baseline {sub_base * 1000:.1f} ms, ratio "
            f"{sub_pipe / sub_base:.3f} (per repetition {min(sub_ratios):.3f}.."
            f"{max(sub_ratios):.3f})"
        )

    first = [s.body for s in samples[:BATCH_SIZE]]
    runs = max(1, cold_runs)
    bare = cold_start(first, runs, "memory")
    cold = cold_start(first, runs, "function")
    say(
        f"cold start: {cold['total_s']:.3f} s median of {runs} (fresh process: interpreter, "
        f"import function_app {cold['import_s']:.3f} s, the Function's processor built "
        f"(Application Insights sink: OpenTelemetry and the exporter; Blob dead letters) and a "
        f"first batch of {cold['messages']} {cold['batch_s']:.3f} s with {cold['estimated']} "
        f"estimated, encodings loaded on first use, events emitted, not exported); with an "
        f"in-memory sink instead {bare['total_s']:.3f} s (batch {bare['batch_s']:.3f} s)"
    )

    memory = measure_memory(large_batch(records, max(1, memory_messages), seed=seed + 4))
    say(
        f"memory: batch of {max(1, memory_messages)} messages, {memory['input_mb']:.1f} MB in "
        f"all: peak RSS {memory['peak_mb']:.0f} MB (before the batch {memory['before_mb']:.0f}"
        f" MB, after imports); Python heap peak during a batch {memory['heap_peak_mb']:.1f} MB"
        f" (tracemalloc)"
    )

    figures = {
        "messages": len(samples),
        "pipeline_mps": round(len(samples) / pipe_s),
        "baseline_mps": round(len(samples) / base_s),
        "ratio": round(ratio, 3),
        "cold_start_s": round(cold["total_s"], 3),
        "peak_mb": round(memory["peak_mb"]),
        "events": last.events,
        "expected_events": expected,
    }
    say(" ".join(f"{key}={figures[key]}" for key in list(figures)[:6]))
    return figures
