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
        description="Run a mix of recorded exchanges through the Function's code path and a "
        "least-work baseline in the same run; print the ratio, cold start and peak memory.",
    )
    bench.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    bench.add_argument("--messages", type=int, default=1000)
    bench.add_argument("--repeat", type=int, default=7)
    bench.add_argument("--cold-runs", type=int, default=5)
    bench.add_argument("--memory-messages", type=int, default=100)
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from chargeback.tools.bench.run import run

    run(
        corpus=args.corpus,
        messages=args.messages,
        repeat=args.repeat,
        cold_runs=args.cold_runs,
        memory_messages=args.memory_messages,
    )
    return 0
