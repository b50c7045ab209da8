"""``replay``: gateway messages (a file, standard input, or the dead-letter container) through
exactly the code path the Function runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from chargeback.batches import BatchReport, run_batches
from chargeback.emit import AzureMonitorSink, DirectoryDeadLetters, EventSink, JsonlSink
from chargeback.emit.deadletter import BlobDeadLetters, DeadLetter, StoredDeadLetter
from chargeback.errors import TransientError, UserError
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, get_settings
from chargeback.tools.progress import Progress, count_lines

__all__ = ["DEFAULT_DB", "DEFAULT_DEAD_LETTERS", "add_parser", "read_messages", "replay_file"]

#: The local store every command reads and writes by default (demo, replay, query, report).
DEFAULT_DB = Path(".chargeback/local.duckdb")
DEFAULT_DEAD_LETTERS = Path(".chargeback/deadletter")


def add_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="run gateway messages through the Function's path",
        description="Run Event Hub message bodies (one a line) through exactly the code path the "
        "Function runs. Without --sink, events go to Application Insights when "
        "APPLICATIONINSIGHTS_CONNECTION_STRING is set, else to the local store (--db).",
    )
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
    replay.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"local store file (default: {DEFAULT_DB})"
    )
    replay.add_argument(
        "--dead-letters",
        type=Path,
        default=DEFAULT_DEAD_LETTERS,
        help=f"where dead letters of a file replay go (default: {DEFAULT_DEAD_LETTERS})",
    )
    replay.add_argument(
        "--retries", type=_retries, default=5, help="reruns of a failed batch (default: 5)"
    )
    replay.set_defaults(run=run)


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run(args: argparse.Namespace) -> int:
    if args.from_container is None and args.file is None:
        raise UserError("say what to replay: a FILE (or - for standard input), or --from-container")
    if args.from_container is not None and args.file is not None:
        raise UserError("replay reads either FILE or --from-container, not both")
    settings = get_settings()
    with ExitStack() as stack:
        sink = _event_sink(args.sink, settings, args.db, stack)
        progress = stack.enter_context(_progress(args))
        try:
            if args.from_container is None:
                report = replay_file(
                    args.file,
                    settings,
                    sink,
                    dead_letters=args.dead_letters,
                    retries=args.retries,
                    stack=stack,
                    progress=progress,
                )
            else:
                report = _replay_container(args, settings, sink, progress)
        except TransientError as exc:
            progress.close()
            sys.stderr.write(f"replay stopped: {exc}\n")
            return 2
    sys.stderr.write(f"replay: {report.summary()}\n")
    return 0


def _progress(args: argparse.Namespace) -> Progress:
    """Messages replayed, out of the file's lines; no bar when the events themselves go to
    the terminal (``--sink jsonl`` on a terminal)."""
    total = None if args.file in (None, "-") else count_lines(Path(args.file))
    shown = not (args.sink == "jsonl" and sys.stdout.isatty())
    return Progress("replay", total=total, unit="message", shown=shown)


def replay_file(
    name: str,
    settings: Settings,
    sink: EventSink,
    *,
    dead_letters: Path,
    retries: int,
    stack: ExitStack,
    progress: Progress | None = None,
) -> BatchReport:
    """Replay one file (or ``-``), as the Function would process its lines; ``progress``
    advances a line at a time and prints what was not emitted above itself."""
    processor = Processor(settings, sink, DirectoryDeadLetters(dead_letters))
    lines: Iterable[bytes] = _open_input(name, stack)
    if progress is None:
        return run_batches(processor, read_messages(lines), retries=retries)
    return run_batches(
        processor, read_messages(progress.each(lines)), retries=retries, errors=progress
    )


def read_messages(stream: Iterable[bytes]) -> Iterator[RawMessage]:
    """Event Hub message bodies, one a line; the line number stands in for the sequence number."""
    for number, line in enumerate(stream, start=1):
        body = line.rstrip(b"\r\n")
        if body.strip():
            yield RawMessage(body=body, sequence_number=number)


def _open_input(name: str, stack: ExitStack) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if path.is_dir():
        raise UserError(f"{name} is a folder: give a file of messages, one a line")
    try:
        return stack.enter_context(path.open("rb"))
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None


def local_sink(db: Path, settings: Settings, stack: ExitStack) -> EventSink:
    """The real exporter into the local store (an ingestion endpoint on localhost)."""
    from chargeback.local.store import LocalStore

    store = stack.enter_context(LocalStore(db))
    sink = AzureMonitorSink(store.connection_string, cloud_role_name=settings.cloud_role_name)
    stack.callback(sink.close)
    return sink


def _event_sink(kind: str | None, settings: Settings, db: Path, stack: ExitStack) -> EventSink:
    if kind == "jsonl":
        return JsonlSink(sys.stdout)
    connection = settings.applicationinsights_connection_string
    if kind == "appinsights" or (kind is None and connection):
        if not connection:
            raise UserError("--sink appinsights needs APPLICATIONINSIGHTS_CONNECTION_STRING")
        return AzureMonitorSink.from_settings(settings)
    return local_sink(db, settings, stack)


def _replay_container(
    args: argparse.Namespace, settings: Settings, sink: EventSink, progress: Progress
) -> BatchReport:
    """Dead letters from their container, through the Function's path. One that is now emitted
    or skipped is moved under ``replayed/`` (``--keep`` leaves it); one dead-lettered again is
    written back under its (maybe new) reason, and the old blob goes if the name changed."""
    container = args.from_container or settings.deadletter_container
    if args.storage:
        store = BlobDeadLetters.connect(args.storage, container)
    elif settings.deadletter_connection_string:
        store = BlobDeadLetters.connect(
            settings.deadletter_connection_string, container, setting="DeadLetterStorage"
        )
    else:  # the Azure setting, reached with the operator's own sign-in
        store = BlobDeadLetters.connect(
            settings.deadletter_service_uri, container, setting="DeadLetterStorage__serviceUri"
        )
    processor = Processor(settings, sink, store)
    pending: dict[int, StoredDeadLetter] = {}

    def messages() -> Iterator[RawMessage]:
        for letter in progress.each(store.read(args.prefix)):
            pending[id(letter.raw)] = letter
            yield letter.raw

    def settle(batch: list[RawMessage], report: BatchReport) -> None:
        # A message is settled when none of its outcomes (a resource-log message has one per
        # record) is a dead letter; else it was written again, maybe under a new reason.
        again: dict[int, set[str]] = {id(raw): set() for raw in batch}
        for raw, outcome in report.by_message(batch):
            if outcome.kind == "dead-lettered":
                again[id(raw)].add(DeadLetter(raw, outcome.reason, outcome.detail).name())
        for raw in batch:
            letter = pending.pop(id(raw))
            names = again[id(raw)]
            if names and letter.name not in names:
                store.delete(letter.name)
            elif not names and not args.keep:
                store.settle(letter)

    return run_batches(
        processor, messages(), retries=args.retries, errors=progress, after_batch=settle
    )
