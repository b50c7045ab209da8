"""`chargeback.tools.send`: batching against real EventDataBatch size accounting, no network."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData, EventDataBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.errors import UserError
from chargeback.tools import send
from chargeback.tools.cli import build_parser
from chargeback.tools.progress import Progress
from chargeback.tools.send import SendReport, publish, send_file

LIMIT = 2_048  # bytes: small enough that a handful of messages fill a batch


class RecordingBatch(EventDataBatch):
    """A real batch (it does the size accounting) that remembers what went in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bodies: list[str] = []

    def add(self, event_data: Any) -> None:
        super().add(event_data)  # raises ValueError when full, before we record anything
        self.bodies.append(event_data.body_as_str())


class FakeProducer:
    def __init__(self, max_size_in_bytes: int = LIMIT) -> None:
        self.max_size_in_bytes = max_size_in_bytes
        self.partition_keys: list[str | None] = []
        self.sent: list[RecordingBatch] = []

    def create_batch(self, *, partition_key: str | None = None) -> RecordingBatch:
        self.partition_keys.append(partition_key)
        return RecordingBatch(max_size_in_bytes=self.max_size_in_bytes, partition_key=partition_key)

    def send_batch(self, event_data_batch: EventDataBatch) -> None:
        assert isinstance(event_data_batch, RecordingBatch)
        assert len(event_data_batch) > 0, "an empty batch was sent"
        self.sent.append(event_data_batch)

    @property
    def bodies(self) -> list[str]:
        return [body for batch in self.sent for body in batch.bodies]


def message(i: int, padding: int = 0) -> str:
    return json.dumps({"version": 1, "requestId": f"r-{i}", "pad": "x" * padding})


def test_small_file_goes_in_one_batch() -> None:
    lines = [message(i) + "\n" for i in range(5)]
    producer = FakeProducer()

    report = publish(lines, producer)

    assert (report.sent, report.batches, report.errors) == (5, 1, [])
    assert producer.bodies == [line.rstrip("\n") for line in lines]


def test_batches_are_filled_up_to_the_limit_and_nothing_is_lost() -> None:
    lines = [message(i, padding=300) for i in range(40)]
    producer = FakeProducer()

    report = publish(lines, producer)

    assert report.ok and report.sent == 40
    assert report.batches == len(producer.sent) > 1
    assert producer.bodies == lines  # every message, once, in order
    for batch in producer.sent:
        assert batch.size_in_bytes <= LIMIT
    # Every batch but the last was full: its successor's first message did not fit in it.
    for full, following in zip(producer.sent, producer.sent[1:], strict=False):
        with pytest.raises(ValueError):
            full.add(EventData(following.bodies[0]))


def test_blank_lines_are_skipped_and_line_endings_dropped() -> None:
    lines = [message(1) + "\r\n", "\n", "   \n", message(2)]
    producer = FakeProducer()

    report = publish(lines, producer)

    assert report.sent == 2 and report.blank_lines == 2
    assert producer.bodies == [message(1), message(2)]


def test_a_message_larger_than_an_empty_batch_is_reported_not_dropped_silently() -> None:
    lines = [message(1), message(2, padding=LIMIT * 2), message(3)]
    producer = FakeProducer()

    report = publish(lines, producer)

    assert not report.ok
    assert [error.line for error in report.errors] == [2]
    assert "does not fit in an empty batch" in report.errors[0].reason
    assert f"{LIMIT:,}" in report.errors[0].reason
    # The oversized message neither cut the batch short nor took its neighbours with it.
    assert producer.bodies == [message(1), message(3)]
    assert report.batches == 1


def test_partition_key_is_used_for_every_batch() -> None:
    producer = FakeProducer()

    publish([message(i, padding=300) for i in range(20)], producer, partition_key="tenant-a")

    assert len(producer.sent) > 1
    assert set(producer.partition_keys) == {"tenant-a"}


def test_empty_input_sends_nothing() -> None:
    producer = FakeProducer()

    assert publish(["\n", ""], producer) == SendReport(blank_lines=2)
    assert producer.sent == []


def test_send_file_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(message(i) for i in range(3)) + "\n", encoding="utf-8")
    producer = FakeProducer()

    report = send_file(path, eventhub_name="hub", producer=producer)

    assert report.sent == 3
    assert producer.bodies == [message(i) for i in range(3)]


def test_non_ascii_is_sent_as_utf8() -> None:
    producer = FakeProducer()

    publish([json.dumps({"endUser": "zoë"}, ensure_ascii=False)], producer)

    assert json.loads(producer.bodies[0]) == {"endUser": "zoë"}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2_500), max_size=30))
def test_any_mix_of_sizes(paddings: list[int]) -> None:
    lines = [message(i, padding) for i, padding in enumerate(paddings)]
    producer = FakeProducer()

    report = publish(lines, producer)

    too_big = {error.line - 1 for error in report.errors}
    assert producer.bodies == [line for i, line in enumerate(lines) if i not in too_big]
    assert report.sent + len(report.errors) == len(lines)
    assert all(batch.size_in_bytes <= LIMIT for batch in producer.sent)
    # Only messages that are too large on their own are refused.
    for i in too_big:
        with pytest.raises(ValueError):
            EventDataBatch(max_size_in_bytes=LIMIT).add(EventData(lines[i]))


# --- The command line -------------------------------------------------------------------------


def main(
    argv: list[str], *, sender: send.Sender = send.send_file, stdin: io.StringIO | None = None
) -> int:
    """``python -m chargeback send ARGV`` as `cli.main` runs it, with the sender injected: the
    command line's own parser, and a user error as exit status 2."""
    args = build_parser().parse_args(["send", *argv])
    try:
        return send.run(args, sender=sender, stdin=stdin)
    except UserError:
        return 2


class RecordingSender:
    """Stands in for send_file so that the command is tested without a hub; keeps its
    arguments."""

    def __init__(self) -> None:
        self.calls: dict[str, Any] = {}

    def __call__(
        self,
        path_or_lines: str | os.PathLike[str] | Iterable[str],
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        eventhub_name: str | None,
        partition_key: str | None = None,
        progress: Progress | None = None,
    ) -> SendReport:
        source = path_or_lines
        self.calls["source"] = source if isinstance(source, str) else list(source)  # type: ignore[arg-type]
        self.calls.update(
            connection_string=connection_string,
            fully_qualified_namespace=fully_qualified_namespace,
            eventhub_name=eventhub_name,
            partition_key=partition_key,
        )
        return SendReport(sent=1, batches=1)


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch) -> RecordingSender:
    for name in (send.CONNECTION_ENV, send.NAMESPACE_ENV, send.HUB_ENV):
        monkeypatch.delenv(name, raising=False)
    return RecordingSender()


@pytest.fixture
def captured(sender: RecordingSender) -> dict[str, Any]:
    return sender.calls


def test_main_with_connection_string(captured: dict[str, Any], sender: RecordingSender) -> None:
    status = main(
        [
            "msgs.jsonl",
            "--connection-string",
            "Endpoint=sb://x/",
            "--hub",
            "h",
            "--partition-key",
            "k",
        ],
        sender=sender,
    )

    assert status == 0
    assert captured == {
        "source": "msgs.jsonl",
        "connection_string": "Endpoint=sb://x/",
        "fully_qualified_namespace": None,
        "eventhub_name": "h",
        "partition_key": "k",
    }


def test_main_defaults_come_from_the_environment(
    captured: dict[str, Any], sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(send.NAMESPACE_ENV, "evhns-x.servicebus.windows.net")
    monkeypatch.setenv(send.HUB_ENV, "gateway-messages")

    assert main(["msgs.jsonl"], sender=sender) == 0
    assert captured["fully_qualified_namespace"] == "evhns-x.servicebus.windows.net"
    assert captured["connection_string"] is None
    assert captured["eventhub_name"] == "gateway-messages"


def test_an_explicit_flag_wins_over_the_environment(
    captured: dict[str, Any], sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(send.CONNECTION_ENV, "Endpoint=sb://stale/")

    argv = ["msgs.jsonl", "--namespace", "ns.servicebus.windows.net", "--hub", "h"]
    assert main(argv, sender=sender) == 0
    assert captured["connection_string"] is None
    assert captured["fully_qualified_namespace"] == "ns.servicebus.windows.net"


def test_main_reads_standard_input(captured: dict[str, Any], sender: RecordingSender) -> None:
    stdin = io.StringIO(message(1) + "\n")
    argv = ["-", "--connection-string", "Endpoint=sb://x/;EntityPath=h"]
    assert main(argv, sender=sender, stdin=stdin) == 0
    assert captured["source"] == [message(1) + "\n"]
    assert captured["eventhub_name"] is None  # the connection string names the hub


@pytest.mark.parametrize(
    "argv",
    [
        ["msgs.jsonl"],  # nowhere to send
        ["msgs.jsonl", "--namespace", "ns.servicebus.windows.net"],  # identity needs a hub
        ["msgs.jsonl", "--connection-string", "c", "--namespace", "n"],  # one target only
    ],
)
def test_usage_errors_exit_2(
    captured: dict[str, Any], sender: RecordingSender, argv: list[str]
) -> None:
    try:
        status = main(argv, sender=sender)
    except SystemExit as exc:  # argparse: two targets at once
        status = int(exc.code or 0)
    assert status == 2
    assert captured == {}


def test_main_reports_unsent_lines_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(message(1) + "\n" + message(2, padding=LIMIT * 2) + "\n", encoding="utf-8")
    producer = FakeProducer()

    def through_fake(
        path_or_lines: str | os.PathLike[str] | Iterable[str],
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        eventhub_name: str | None,
        partition_key: str | None = None,
        progress: Progress | None = None,
    ) -> SendReport:
        return send.send_file(
            path_or_lines,
            connection_string=connection_string,
            fully_qualified_namespace=fully_qualified_namespace,
            eventhub_name=eventhub_name,
            partition_key=partition_key,
            producer=producer,
            progress=progress,
        )

    argv = [str(path), "--connection-string", "Endpoint=sb://x/", "--hub", "h"]
    status = main(argv, sender=through_fake)

    assert status == 1
    err = capsys.readouterr().err
    assert "line 2: not sent" in err
    assert "sent 1 message(s) in 1 batch(es) to h; 1 not sent" in err


def test_a_malformed_connection_string_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(message(1) + "\n", encoding="utf-8")

    assert main([str(path), "--connection-string", "garbage", "--hub", "h"]) == 1
    assert "send: ValueError" in capsys.readouterr().err
