"""``python -m chargeback``: the command line of CONTRACTS §3."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import IO

from chargeback.deadletter import DirectoryDeadLetters
from chargeback.errors import ConfigurationError, TransientError
from chargeback.events import AzureMonitorSink, EventSink, JsonlSink
from chargeback.pipeline import BatchReport, Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, get_settings

__all__ = ["main"]

DEFAULT_DB = Path(".chargeback/local.duckdb")
DEFAULT_DEAD_LETTERS = Path(".chargeback/deadletter")
BATCH_SIZE = 100  # what one Function invocation typically receives (host.json maxEventBatchSize)

# The exporter otherwise reports its own usage to Microsoft endpoints; the demo is offline.
_OFFLINE = (
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
)


def read_messages(stream: IO[bytes]) -> Iterator[RawMessage]:
    """Event Hub message bodies, one a line; the line number stands in for the sequence number."""
    for number, line in enumerate(stream, start=1):
        body = line.rstrip(b"\r\n")
        if body.strip():
            yield RawMessage(body=body, sequence_number=number)


def batches(messages: Iterator[RawMessage], size: int = BATCH_SIZE) -> Iterator[list[RawMessage]]:
    while batch := list(islice(messages, size)):
        yield batch


def run_batches(
    processor: Processor,
    messages: Iterator[RawMessage],
    *,
    retries: int = 5,
    backoff: float = 1.0,
    errors: IO[str] = sys.stderr,
) -> BatchReport:
    """Process batches as the Function does; a transient failure reruns the whole batch, as the
    Event Hubs retry policy would."""
    total = BatchReport()
    for batch in batches(messages):
        for attempt in range(retries + 1):
            try:
                report = processor.process_batch(batch)
                break
            except TransientError as exc:
                if attempt == retries:
                    raise
                errors.write(f"retrying batch after: {exc}\n")
                time.sleep(backoff * 2**attempt)
        for raw, outcome in zip(batch, report.outcomes, strict=True):
            if outcome.kind != "emitted":
                detail = f": {outcome.detail}" if outcome.detail else ""
                errors.write(f"{raw.describe()}: {outcome.kind} ({outcome.reason}){detail}\n")
        total.outcomes.extend(report.outcomes)
    return total


def _open_input(name: str, stack: ExitStack) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    return stack.enter_context(open(name, "rb"))


def _event_sink(args: argparse.Namespace, settings: Settings, stack: ExitStack) -> EventSink:
    if args.sink == "jsonl":
        return JsonlSink(sys.stdout)
    if args.sink == "appinsights" or (
        args.sink is None and settings.applicationinsights_connection_string
    ):
        if not settings.applicationinsights_connection_string:
            raise ConfigurationError(
                "--sink appinsights needs APPLICATIONINSIGHTS_CONNECTION_STRING"
            )
        return AzureMonitorSink.from_settings(settings)
    from chargeback.localstore import LocalStore

    store = stack.enter_context(LocalStore(args.db))
    sink = AzureMonitorSink(store.connection_string, cloud_role_name=settings.cloud_role_name)
    stack.callback(sink.close)
    return sink


def cmd_replay(args: argparse.Namespace) -> int:
    settings = get_settings()
    with ExitStack() as stack:
        sink = _event_sink(args, settings, stack)
        processor = Processor(settings, sink, DirectoryDeadLetters(args.dead_letters))
        stream = _open_input(args.file, stack)
        try:
            report = run_batches(processor, read_messages(stream), retries=args.retries)
        except TransientError as exc:
            sys.stderr.write(f"replay stopped: {exc}\n")
            return 2
    sys.stderr.write(f"replay: {report.summary()}\n")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from chargeback.kql import run_kql

    for name in args.queries:
        path = Path(name)
        text = path.read_text() if path.exists() else name
        if len(args.queries) > 1:
            print(f"\n# {path.name}")
        print(run_kql(args.db, text).table())
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from chargeback.localstore import LocalStore

    with LocalStore(args.db, port=args.port) as store:
        print(f"local store on http://127.0.0.1:{store.port}/ writing {args.db}")
        print(f"APPLICATIONINSIGHTS_CONNECTION_STRING={store.connection_string}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def cmd_demo(args: argparse.Namespace) -> int:
    for name in _OFFLINE:
        os.environ.setdefault(name, "true")
    args.db.unlink(missing_ok=True)
    samples = sorted(Path(args.samples).glob("*.jsonl"))
    print(f"Replaying {len(samples)} sample files through the real exporter into {args.db}")
    for sample in samples:
        replay = argparse.Namespace(
            file=str(sample), sink="local", db=args.db, dead_letters=args.dead_letters, retries=2
        )
        if cmd_replay(replay) != 0:
            return 2
    queries = [str(Path(args.queries) / name) for name in DEMO_QUERIES]
    return cmd_query(argparse.Namespace(db=args.db, queries=queries))


#: The tables the demo ends with.
DEMO_QUERIES = ("tokens-by-business-unit.kql", "tokens-by-application.kql")


def cmd_bench(args: argparse.Namespace) -> int:
    from chargeback.bench import run

    run(
        corpus=args.corpus,
        messages=args.messages,
        repeat=args.repeat,
        cold_runs=args.cold_runs,
        memory_messages=args.memory_messages,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chargeback", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    replay = commands.add_parser("replay", help="run gateway messages through the Function's path")
    replay.add_argument("file", help="a file of Event Hub message bodies, one a line, or -")
    replay.add_argument("--sink", choices=("jsonl", "appinsights", "local"), default=None)
    replay.add_argument("--db", type=Path, default=DEFAULT_DB, help="local store file")
    replay.add_argument("--dead-letters", type=Path, default=DEFAULT_DEAD_LETTERS)
    replay.add_argument("--retries", type=int, default=5)
    replay.set_defaults(run=cmd_replay)

    query = commands.add_parser("query", help="run KQL on the local store")
    query.add_argument("queries", nargs="+", help="a .kql file or KQL text")
    query.add_argument("--db", type=Path, default=DEFAULT_DB)
    query.set_defaults(run=cmd_query)

    store = commands.add_parser("store", help="serve the local ingestion endpoint")
    store.add_argument("--db", type=Path, default=DEFAULT_DB)
    store.add_argument("--port", type=int, default=8765)
    store.set_defaults(run=cmd_store)

    demo = commands.add_parser("demo", help="replay samples/ offline and print the chargeback")
    demo.add_argument("--samples", default="samples")
    demo.add_argument("--queries", default="queries")
    demo.add_argument("--db", type=Path, default=Path(".chargeback/demo.duckdb"))
    demo.add_argument("--dead-letters", type=Path, default=DEFAULT_DEAD_LETTERS)
    demo.set_defaults(run=cmd_demo)

    commands.add_parser("send", help="publish gateway messages to an Event Hub (see --help)")

    bench = commands.add_parser("bench", help="measure throughput, cold start and memory")
    bench.add_argument("--corpus", type=Path, default=Path("tests/data/recorded-exchanges.jsonl"))
    bench.add_argument("--messages", type=int, default=1000)
    bench.add_argument("--repeat", type=int, default=5)
    bench.add_argument("--cold-runs", type=int, default=5)
    bench.add_argument("--memory-messages", type=int, default=100)
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["send"]:  # a client tool with its own options and no app settings
        from chargeback import send

        return send.main(argv[1:])
    args = build_parser().parse_args(argv)
    # Outcomes are reported per line on standard error; the processor's own log stays quiet.
    logging.getLogger("chargeback").addHandler(logging.NullHandler())
    try:
        return int(args.run(args))
    except ConfigurationError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
