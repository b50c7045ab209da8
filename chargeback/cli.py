"""``python -m chargeback``: the command line of CONTRACTS §3."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import IO, Any

from chargeback.deadletter import (
    BlobDeadLetters,
    DeadLetter,
    DirectoryDeadLetters,
    StoredDeadLetter,
)
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
    after_batch: Callable[[list[RawMessage], BatchReport], None] | None = None,
) -> BatchReport:
    """Process batches as the Function does; a transient failure reruns the whole batch, as the
    Event Hubs retry policy would. ``after_batch`` runs once a batch was delivered (where the
    Function's checkpoint would move)."""
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
        if after_batch is not None:
            after_batch(batch, report)
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
    settings = getattr(args, "settings", None) or get_settings()
    from_container = getattr(args, "from_container", None)
    if (from_container is None) == (args.file is None):
        raise ConfigurationError("replay reads either FILE or --from-container, not both")
    with ExitStack() as stack:
        sink = _event_sink(args, settings, stack)
        try:
            if from_container is None:
                processor = Processor(settings, sink, DirectoryDeadLetters(args.dead_letters))
                stream = _open_input(args.file, stack)
                report = run_batches(processor, read_messages(stream), retries=args.retries)
            else:
                report = _replay_container(args, settings, sink)
        except TransientError as exc:
            sys.stderr.write(f"replay stopped: {exc}\n")
            return 2
    sys.stderr.write(f"replay: {report.summary()}\n")
    return 0


def _replay_container(args: argparse.Namespace, settings: Settings, sink: EventSink) -> BatchReport:
    """Dead letters from their container, through the Function's path. One that is now emitted
    or skipped is moved under ``replayed/`` (``--keep`` leaves it); one dead-lettered again is
    written back under its (maybe new) reason, and the old blob goes if the name changed."""
    store = BlobDeadLetters.connect(
        args.storage or settings.deadletter_connection_string or settings.deadletter_service_uri,
        args.from_container or settings.deadletter_container,
    )
    processor = Processor(settings, sink, store)
    pending: dict[int, StoredDeadLetter] = {}

    def messages() -> Iterator[RawMessage]:
        for letter in store.read(args.prefix):
            pending[id(letter.raw)] = letter
            yield letter.raw

    def settle(batch: list[RawMessage], report: BatchReport) -> None:
        for raw, outcome in zip(batch, report.outcomes, strict=True):
            letter = pending.pop(id(raw))
            if outcome.kind == "dead-lettered":
                again = DeadLetter(raw, outcome.reason, outcome.detail).name()
                if again != letter.name:
                    store.delete(letter.name)
            elif not args.keep:
                store.settle(letter)

    return run_batches(processor, messages(), retries=args.retries, after_batch=settle)


def cmd_query(args: argparse.Namespace) -> int:
    from chargeback.kql import run_kql

    parameters = _parameters(getattr(args, "param", None) or [])
    for name in args.queries:
        text = _query_text(name)
        if len(args.queries) > 1:
            print(f"\n# {Path(name).name if text is not name else 'query'}")
        print(run_kql(args.db, text, _declared(text, parameters)).table())
    return 0


def _query_text(name: str) -> str:
    """A .kql file's text, or the argument itself when it is KQL text."""
    if "\n" in name or "|" in name:
        return name
    return Path(name).read_text(encoding="utf-8")


def _parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; a value that reads as a number is a number. ``ReportMonth`` (the
    query packs' month) is text and must be ``YYYY-MM``."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigurationError(f"--param wants NAME=VALUE, not {pair!r}")
        if name == "ReportMonth":
            if value and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
                raise ConfigurationError(f"--param ReportMonth wants YYYY-MM, not {value!r}")
            values[name] = value
            continue
        try:
            values[name] = float(value) if "." in value else int(value)
        except ValueError:
            values[name] = value
    return values


def _declared(text: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters this query declares (``declare query_parameters``); others are left out,
    so one set of values can serve a whole list of queries."""
    if not parameters:
        return None
    import duckdb_kql

    names = {declaration.name for declaration in duckdb_kql.query_parameters(text)}
    return {name: value for name, value in parameters.items() if name in names} or None


def cmd_report(args: argparse.Namespace) -> int:
    from chargeback import report

    month = report.parse_month(args.month) if args.month else None
    built = report.build_report(
        args.db,
        month=month,
        ptu_monthly_cost=args.ptu_monthly_cost,
        ptu_output_weight=args.ptu_output_weight,
        queries=args.queries or report.QUERIES_DIR,
    )
    if built is None:
        sys.stderr.write(f"report: no chargeback events in {args.db}\n")
        return 1
    sys.stdout.write(report.render_text(built))
    if args.html:
        Path(args.html).write_text(report.render_html(built), encoding="utf-8")
        sys.stderr.write(f"report: wrote {args.html}\n")
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
    from chargeback.kql import run_kql
    from chargeback.report import money_table

    for name in _OFFLINE:
        os.environ.setdefault(name, "true")
    args.db.unlink(missing_ok=True)
    settings = _demo_settings(get_settings(), Path(args.samples))
    samples = sorted(Path(args.samples).glob("*.jsonl"))
    print(f"Replaying {len(samples)} sample files through the real exporter into {args.db}")
    print(
        f"  identity map {settings.identity_map_file}; provisioned deployments "
        f"{', '.join(sorted(settings.provisioned_deployments)) or 'none'}; "
        f"PTU bill {DEMO_PARAMETERS['PtuMonthlyCost']:,.2f} a month"
    )
    for sample in samples:
        replay = argparse.Namespace(
            file=str(sample),
            sink="local",
            db=args.db,
            dead_letters=args.dead_letters,
            retries=2,
            settings=settings,
        )
        if cmd_replay(replay) != 0:
            return 2
    for name in DEMO_QUERIES:
        text = (Path(args.queries) / name).read_text(encoding="utf-8")
        result = run_kql(args.db, text, _declared(text, DEMO_PARAMETERS))
        print(f"\n# {name}")
        print(money_table(result.columns, result.rows))
    return 0


def _demo_settings(settings: Settings, samples: Path) -> Settings:
    """The sample identity map and a provisioned deployment, unless the environment sets them."""
    update: dict[str, Any] = {}
    if settings.identity_map_file is None and (samples / "identity-map.json").is_file():
        update["identity_map_file"] = samples / "identity-map.json"
        if "appKey" not in settings.identity_order:  # the sample maps a legacy masked key
            update["identity_order"] = (*settings.identity_order, "appKey")
    if "CHARGEBACK_PROVISIONED_DEPLOYMENTS" not in os.environ:
        update["provisioned_deployments"] = DEMO_PROVISIONED
    return settings.model_copy(update=update)


#: The tables the demo ends with: money per business unit, then per application (with the
#: provisioned deployment's bill shared out by tokens).
DEMO_QUERIES = ("cost-by-business-unit.kql", "chargeback-by-application.kql")
#: The demo's provisioned (PTU) deployment and its monthly bill: an example amount, e.g.
#: 15 PTU for 730 hours at 1.00 a PTU-hour.
DEMO_PROVISIONED = frozenset({"gpt-4o"})
DEMO_PARAMETERS: dict[str, Any] = {"PtuMonthlyCost": 10950.0}


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


def cmd_accuracy(args: argparse.Namespace) -> int:
    from chargeback.accuracy import main as accuracy

    return accuracy(args.file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chargeback", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    replay = commands.add_parser("replay", help="run gateway messages through the Function's path")
    replay.add_argument(
        "file", nargs="?", help="a file of Event Hub message bodies, one a line, or -"
    )
    replay.add_argument(
        "--from-container",
        nargs="?",
        const="",
        metavar="CONTAINER",
        help="replay the dead letters in this Blob container instead of a file "
        "(default: CHARGEBACK_DEADLETTER_CONTAINER)",
    )
    replay.add_argument(
        "--storage",
        help="with --from-container: a connection string, or a blob endpoint URL reached with "
        "your Azure login (default: DeadLetterStorage or DeadLetterStorage__serviceUri)",
    )
    replay.add_argument(
        "--prefix", default="", help="with --from-container: only names starting so (a day)"
    )
    replay.add_argument(
        "--keep", action="store_true", help="leave replayed dead letters where they are"
    )
    replay.add_argument("--sink", choices=("jsonl", "appinsights", "local"), default=None)
    replay.add_argument("--db", type=Path, default=DEFAULT_DB, help="local store file")
    replay.add_argument("--dead-letters", type=Path, default=DEFAULT_DEAD_LETTERS)
    replay.add_argument("--retries", type=int, default=5)
    replay.set_defaults(run=cmd_replay)

    query = commands.add_parser("query", help="run KQL on the local store")
    query.add_argument("queries", nargs="+", help="a .kql file or KQL text")
    query.add_argument("--db", type=Path, default=DEFAULT_DB)
    query.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a value for the query's declare query_parameters (e.g. ReportMonth=2026-11,"
        " PtuMonthlyCost=10950)",
    )
    query.set_defaults(run=cmd_query)

    report = commands.add_parser("report", help="print the month's chargeback from the store")
    report.add_argument("--db", type=Path, default=DEFAULT_DB)
    report.add_argument("--month", help="YYYY-MM (default: the latest month in the store)")
    report.add_argument(
        "--ptu-monthly-cost",
        type=float,
        default=0.0,
        help="the month's provisioned throughput bill, shared out by tokens",
    )
    report.add_argument(
        "--ptu-output-weight",
        type=float,
        default=1.0,
        help="input tokens one output token counts as in the PTU share (Azure: 4 for gpt-4.1+)",
    )
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    report.add_argument("--queries", type=Path, default=None, help="the query pack directory")
    report.set_defaults(run=cmd_report)

    store = commands.add_parser("store", help="serve the local ingestion endpoint")
    store.add_argument("--db", type=Path, default=DEFAULT_DB)
    store.add_argument("--port", type=int, default=8765)
    store.set_defaults(run=cmd_store)

    accuracy = commands.add_parser("accuracy", help="estimate recorded calls, compare with usage")
    accuracy.add_argument("file", help="recorded exchanges, one JSON object a line")
    accuracy.set_defaults(run=cmd_accuracy)

    demo = commands.add_parser("demo", help="replay samples/ offline and print the chargeback")
    demo.add_argument("--samples", default="samples")
    demo.add_argument("--queries", default="queries")
    demo.add_argument("--db", type=Path, default=Path(".chargeback/demo.duckdb"))
    demo.add_argument("--dead-letters", type=Path, default=DEFAULT_DEAD_LETTERS)
    demo.set_defaults(run=cmd_demo)

    commands.add_parser("send", help="publish gateway messages to an Event Hub (see --help)")
    commands.add_parser(
        "prices", help="prices update: rebuild the price table from the Azure Retail Prices API"
    )

    bench = commands.add_parser("bench", help="measure throughput, cold start and memory")
    bench.add_argument("--corpus", type=Path, default=Path("tests/data/recorded-exchanges.jsonl"))
    bench.add_argument("--messages", type=int, default=1000)
    bench.add_argument("--repeat", type=int, default=7)
    bench.add_argument("--cold-runs", type=int, default=5)
    bench.add_argument("--memory-messages", type=int, default=100)
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["send"]:  # a client tool with its own options and no app settings
        from chargeback import send

        return send.main(argv[1:])
    if argv[:1] == ["prices"]:  # a maintainer's tool with its own options (chargeback/tools)
        from chargeback.tools import prices

        return prices.main(argv[1:], shipped=Path(__file__).parent / "data" / "prices.json")
    args = build_parser().parse_args(argv)
    # Outcomes are reported per line on standard error; the processor's own log stays quiet.
    logging.getLogger("chargeback").addHandler(logging.NullHandler())
    try:
        return int(args.run(args))
    except ConfigurationError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
