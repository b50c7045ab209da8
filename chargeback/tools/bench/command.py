"""``bench``: the command's arguments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chargeback.tools.bench.mix import DEFAULT_CORPUS

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure throughput, cold start and memory",
        description="Run mixes of recorded exchanges through what an invocation does (the "
        "processor and the real Application Insights sink, delivering to an ingestion endpoint "
        "on localhost) and through a least-work baseline in the same run; print the ratio, "
        "throughput per core, estimation with and without the token-count cache, cold start "
        "and peak memory.",
    )
    bench.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    bench.add_argument("--messages", type=int, default=1000)
    bench.add_argument("--repeat", type=int, default=7)
    bench.add_argument("--cold-runs", type=int, default=5)
    bench.add_argument("--memory-messages", type=int, default=100)
    bench.add_argument("--small-messages", type=int, default=None, help="default: --messages")
    bench.add_argument("--conversations", type=int, default=None, help="default: --messages / 20")
    bench.add_argument("--turns", type=int, default=10)
    bench.add_argument(
        "--store-events",
        type=int,
        default=None,
        help="envelopes posted to the local store alone (default: 20 x --messages)",
    )
    bench.add_argument(
        "--store-messages",
        type=int,
        default=None,
        help="messages replayed into the local store and into jsonl (default: 5 x --messages)",
    )
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from chargeback.tools.bench.run import run

    run(
        corpus=args.corpus,
        messages=args.messages,
        repeat=args.repeat,
        cold_runs=args.cold_runs,
        memory_messages=args.memory_messages,
        small_messages=args.small_messages,
        conversations=args.conversations,
        turns=args.turns,
        store_events=args.store_events,
        store_messages=args.store_messages,
    )
    return 0
