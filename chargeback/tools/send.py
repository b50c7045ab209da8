"""``python -m chargeback send FILE``: publish gateway messages to an Event Hub.

A client tool for smoke tests of a deployment and for feeding the local emulator: it reads
messages one a line (the shape API Management's ``log-to-eventhub`` sends, CONTRACTS §1) and
publishes each line, unchanged, as one event. Events are packed into batches filled up to the
hub's own size limit, so a file of small messages costs a handful of round trips.

Where it sends, in order of precedence:

- ``--connection-string`` or ``$EVENTHUB_SEND_CONNECTION``: a connection string with Send rights,
  for example the emulator's (``...;UseDevelopmentEmulator=true;``);
- ``--namespace`` or ``$EVENTHUB_SEND_NAMESPACE``: a fully qualified namespace
  (``evhns-x.servicebus.windows.net``) reached with ``DefaultAzureCredential``; the signed-in
  principal needs *Azure Event Hubs Data Sender* on the namespace or hub.

This module does not read the processor's settings: it runs on a workstation, not in the
Function. The Azure SDK is imported only when a producer is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from chargeback.errors import UserError
from chargeback.tools.progress import Progress, count_lines

if TYPE_CHECKING:
    from azure.eventhub import EventData, EventDataBatch

__all__ = ["LineError", "Producer", "SendReport", "add_parser", "run", "send_file"]

CONNECTION_ENV = "EVENTHUB_SEND_CONNECTION"
NAMESPACE_ENV = "EVENTHUB_SEND_NAMESPACE"
HUB_ENV = "EVENTHUB_NAME"


class Producer(Protocol):
    """The part of ``azure.eventhub.EventHubProducerClient`` that sending needs."""

    def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch: ...

    def send_batch(self, event_data_batch: EventDataBatch) -> None: ...


@dataclass(frozen=True)
class LineError:
    """A line that was not sent, and why."""

    line: int
    reason: str


@dataclass
class SendReport:
    """What one run sent."""

    sent: int = 0
    batches: int = 0
    blank_lines: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def send_file(
    path_or_lines: str | os.PathLike[str] | Iterable[str],
    *,
    connection_string: str | None = None,
    fully_qualified_namespace: str | None = None,
    eventhub_name: str | None,
    partition_key: str | None = None,
    producer: Producer | None = None,
    progress: Progress | None = None,
) -> SendReport:
    """Publish every non-blank line of a file (or of an iterable of lines) as one event.

    Give ``producer`` to send through an existing client (tests pass a fake); otherwise one is
    opened from ``connection_string`` or ``fully_qualified_namespace`` and closed afterwards.
    ``eventhub_name`` may be ``None`` only when the connection string names the hub
    (``EntityPath=...``). ``progress`` advances a line at a time.
    """
    with contextlib.ExitStack() as stack:
        lines = _lines(path_or_lines, stack)
        if progress is not None:
            lines = progress.each(lines)
        if producer is None:
            producer = stack.enter_context(
                _open_producer(connection_string, fully_qualified_namespace, eventhub_name)
            )
        return publish(lines, producer, partition_key=partition_key)


def publish(
    lines: Iterable[str], producer: Producer, *, partition_key: str | None = None
) -> SendReport:
    """Fill batches up to the hub's limit, send each when full, and send the last one."""
    from azure.eventhub import EventData

    report = SendReport()
    batch = producer.create_batch(partition_key=partition_key)
    for number, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n")
        if not body.strip():
            report.blank_lines += 1
            continue
        event = EventData(body)
        if _try_add(batch, event):
            continue
        # The batch is full for this message. Try it in a fresh one before sending the full
        # one, so that a message too large for any batch is reported without cutting the
        # current batch short.
        fresh = producer.create_batch(partition_key=partition_key)
        if not _try_add(fresh, event):
            report.errors.append(LineError(number, _too_large(body, fresh)))
            continue
        if len(batch):
            _send(producer, batch, report)
        batch = fresh
    if len(batch):
        _send(producer, batch, report)
    return report


def _try_add(batch: EventDataBatch, event: EventData) -> bool:
    # EventDataBatch.add raises ValueError when the event would take the batch over its limit.
    try:
        batch.add(event)
    except ValueError:
        return False
    return True


def _send(producer: Producer, batch: EventDataBatch, report: SendReport) -> None:
    producer.send_batch(batch)
    report.sent += len(batch)
    report.batches += 1


def _too_large(body: str, batch: EventDataBatch) -> str:
    size = len(body.encode("utf-8"))
    return (
        f"message of {size:,} bytes does not fit in an empty batch "
        f"(the hub's limit is {batch.max_size_in_bytes:,} bytes)"
    )


def _lines(
    source: str | os.PathLike[str] | Iterable[str], stack: contextlib.ExitStack
) -> Iterable[str]:
    if isinstance(source, (str, os.PathLike)):
        return stack.enter_context(Path(source).open(encoding="utf-8"))
    return source


@contextlib.contextmanager
def _open_producer(
    connection_string: str | None,
    fully_qualified_namespace: str | None,
    eventhub_name: str | None,
) -> Iterator[Producer]:
    from azure.eventhub import EventHubProducerClient

    if connection_string:
        client = EventHubProducerClient.from_connection_string(
            connection_string, eventhub_name=eventhub_name
        )
        with client:
            yield client
        return
    if not fully_qualified_namespace:
        raise ValueError("give a connection string or a fully qualified namespace")
    if not eventhub_name:
        raise ValueError("give the Event Hub name when sending with an identity")
    from azure.identity import DefaultAzureCredential

    with DefaultAzureCredential() as credential:
        client = EventHubProducerClient(
            fully_qualified_namespace=fully_qualified_namespace,
            eventhub_name=eventhub_name,
            credential=credential,
        )
        with client:
            yield client


# --- Command line ----------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "send",
        help="publish gateway messages to an Event Hub",
        description="Publish gateway messages, one JSON message a line, to an Event Hub.",
    )
    parser.add_argument(
        "file", metavar="FILE", help="file of messages, one a line; - reads standard input"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--connection-string",
        help=f"Event Hubs connection string with Send rights (default: ${CONNECTION_ENV})",
    )
    target.add_argument(
        "--namespace",
        help="fully qualified namespace, e.g. evhns-x.servicebus.windows.net; signs in with "
        f"DefaultAzureCredential (default: ${NAMESPACE_ENV})",
    )
    parser.add_argument("--hub", help=f"Event Hub name (default: ${HUB_ENV})")
    parser.add_argument(
        "--partition-key",
        help="send every message with this partition key (keeps them in order on one partition)",
    )
    parser.set_defaults(run=run)


class Sender(Protocol):
    """What `main` publishes with: `send_file`, or a fake in tests."""

    def __call__(
        self,
        path_or_lines: str | os.PathLike[str] | Iterable[str],
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        eventhub_name: str | None,
        partition_key: str | None = None,
        progress: Progress | None = None,
    ) -> SendReport: ...


def run(
    args: argparse.Namespace, *, sender: Sender = send_file, stdin: IO[str] | None = None
) -> int:
    """Run the ``send`` command; returns the exit status (0 all sent, 1 some not)."""
    connection_string, namespace = _target(args)
    hub = args.hub or os.environ.get(HUB_ENV) or None
    if not connection_string and not namespace:
        raise UserError(
            f"say where to send: --connection-string (or ${CONNECTION_ENV}) "
            f"or --namespace (or ${NAMESPACE_ENV})"
        )
    if namespace and not hub:
        raise UserError(f"--hub (or ${HUB_ENV}) is required with --namespace")

    from azure.core.exceptions import AzureError
    from azure.eventhub.exceptions import EventHubError

    source: str | Iterable[str] = (stdin or sys.stdin) if args.file == "-" else args.file
    total = None if args.file == "-" else count_lines(Path(args.file))
    try:
        with Progress("send", total=total) as progress:
            report = sender(
                source,
                connection_string=connection_string,
                fully_qualified_namespace=namespace,
                eventhub_name=hub,
                partition_key=args.partition_key,
                progress=progress,
            )
    except (OSError, ValueError, AzureError, EventHubError) as exc:
        # A file that cannot be read, a malformed connection string, a sign-in or network
        # failure: one line that says which, not a traceback.
        print(f"send: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _print_report(report, hub or "the hub named in the connection string")
    return 0 if report.ok else 1


def _target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    # An explicit flag wins over both variables, so a stale variable cannot redirect a send.
    if args.connection_string or args.namespace:
        return args.connection_string, args.namespace
    connection_string = os.environ.get(CONNECTION_ENV) or None
    return connection_string, None if connection_string else os.environ.get(NAMESPACE_ENV)


def _print_report(report: SendReport, hub: str) -> None:
    for error in report.errors:
        print(f"line {error.line}: not sent: {error.reason}", file=sys.stderr)
    print(
        f"sent {report.sent} message(s) in {report.batches} batch(es) to {hub}; "
        f"{len(report.errors)} not sent, {report.blank_lines} blank line(s) skipped",
        file=sys.stderr,
    )
