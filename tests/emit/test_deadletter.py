"""Issue #5, point 2: dead letters in Blob Storage, against a real Azurite started by the tests.
The original bytes unchanged, the reason and the Event Hub position as metadata, named so an
operator can find them, and read back by ``python -m chargeback replay --from-container``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from chargeback.emit.deadletter import REPLAYED_PREFIX, BlobDeadLetters, DeadLetter
from chargeback.errors import DeadLetterUnavailable
from chargeback.receive import RawMessage
from tests.support.messages import v1_message
from tests.support.services import Azurite

ROOT = Path(__file__).resolve().parents[2]
ENQUEUED = datetime(2026, 11, 20, 10, 0, 1, 123456, tzinfo=UTC)


def _container(azurite: Azurite) -> ContainerClient:
    return ContainerClient.from_connection_string(
        azurite.connection_string, f"dl-{uuid.uuid4().hex[:12]}"
    )


def _raw(body: bytes, sequence: int = 42) -> RawMessage:
    return RawMessage(body, "3", sequence, "8192", ENQUEUED)


def test_original_bytes_and_metadata(azurite: Azurite) -> None:
    container = _container(azurite)
    store = BlobDeadLetters(container)
    body = b'\xff\xfe{"not": "utf-8"}\r\n\x00 and a trailing line\n'
    store.put(DeadLetter(_raw(body), "malformed", "message is not UTF-8 (byte 0)"))

    (blob,) = container.list_blobs(include=["metadata"])
    digest = hashlib.sha256(body).hexdigest()[:16]
    assert blob.name == f"2026/11/20/malformed/3-42-{digest}.json"
    assert blob.metadata == {
        "reason": "malformed",
        "detail": "message is not UTF-8 (byte 0)",
        "partition": "3",
        "sequence_number": "42",
        "offset": "8192",
        "enqueued_time": "2026-11-20T10:00:01.123456+00:00",
    }
    assert container.download_blob(blob.name).readall() == body


def test_the_same_dead_letter_twice_is_one_blob(azurite: Azurite) -> None:
    """A batch run again writes its dead letters again: same name, same blob."""
    container = _container(azurite)
    store = BlobDeadLetters(container)
    for _ in range(3):
        store.put(DeadLetter(_raw(b"nope"), "malformed", "message is not JSON"))
    assert len(list(container.list_blobs())) == 1


def test_metadata_is_always_a_valid_header(azurite: Azurite) -> None:
    container = _container(azurite)
    store = BlobDeadLetters(container)
    store.put(
        DeadLetter(_raw(b"x"), "malformed", "line one\r\nline two: Grüße \u2028 " + "x" * 3000)
    )
    (blob,) = container.list_blobs(include=["metadata"])
    detail = blob.metadata["detail"]
    assert detail.startswith("line one??line two: Gr??e ? x")
    assert len(detail) == 1024


def test_an_unreachable_store_raises_so_the_batch_is_retried(azurite: Azurite) -> None:
    dead_port = azurite.connection_string.replace(str(azurite.port), "9")
    container = ContainerClient.from_connection_string(dead_port, "unreachable", retry_total=0)
    with pytest.raises(DeadLetterUnavailable):
        BlobDeadLetters(container).put(DeadLetter(_raw(b"x"), "malformed", "m"))


def test_read_back_with_the_position(azurite: Azurite) -> None:
    container = _container(azurite)
    store = BlobDeadLetters(container)
    letters = [DeadLetter(_raw(f"body {i}".encode(), i), "malformed", "m") for i in range(3)]
    for letter in letters:
        store.put(letter)
    read = sorted(store.read(), key=lambda stored: stored.raw.sequence_number or 0)
    assert [stored.raw for stored in read] == [letter.raw for letter in letters]
    assert [stored.name for stored in read] == [letter.name() for letter in letters]

    store.settle(read[0])
    assert [s.name for s in store.read()] == [read[1].name, read[2].name]
    moved = container.get_blob_client(REPLAYED_PREFIX + read[0].name)
    assert moved.download_blob().readall() == b"body 0"
    assert moved.get_blob_properties().metadata["reason"] == "malformed"
    assert [s.name for s in store.read(prefix="2026/11/21/")] == []


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONN")}
    return subprocess.run(
        [sys.executable, "-m", "chargeback", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
        check=False,
    )


def test_replay_from_the_container(azurite: Azurite, records: list[dict[str, Any]]) -> None:
    """An operator fixes the cause (a deployment mapping) and replays the container: what now
    bills is emitted and moved under replayed/; what is still bad stays, where it was."""
    container = _container(azurite)
    store = BlobDeadLetters(container)
    record = next(r for r in records if r["status"] == 200 and r["endpoint"] == "chat")
    fixable = v1_message(
        record,
        "call-7",
        model=False,
        usage=False,
        url="https://gw/openai/deployments/finance-bot/chat/completions?api-version=2024-10-21",
        requestBody=json.dumps({"messages": [{"role": "user", "content": "Say this is a test"}]}),
        responseBody="",
    )
    store.put(DeadLetter(_raw(fixable, 7), "unknown-model", "deployment 'finance-bot'"))
    store.put(DeadLetter(_raw(b"still not json", 8), "malformed", "message is not JSON"))
    env = {"DeadLetterStorage": azurite.connection_string}
    args = ("replay", "--from-container", container.container_name, "--sink", "jsonl")

    # Not fixed yet: both are dead-lettered again, under the same names.
    result = _cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "received=2 emitted=0 skipped=0 dead_lettered=2" in result.stderr
    names = sorted(b.name for b in container.list_blobs())
    assert len(names) == 2 and not any(n.startswith(REPLAYED_PREFIX) for n in names)

    fixed = {**env, "CHARGEBACK_DEPLOYMENT_MODELS": json.dumps({"finance-bot": "gpt-4o-mini"})}
    result = _cli(*args, env=fixed)
    assert result.returncode == 0, result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["customDimensions"]["RequestId"] == "call-7"
    assert event["customDimensions"]["Deployment"] == "finance-bot"
    assert "received=2 emitted=1 skipped=0 dead_lettered=1" in result.stderr
    after = {b.name: b.metadata for b in container.list_blobs(include=["metadata"])}
    unknown = next(n for n in names if "/unknown-model/" in n)
    assert set(after) == {REPLAYED_PREFIX + unknown, next(n for n in names if "/malformed/" in n)}
    assert after[REPLAYED_PREFIX + unknown]["sequence_number"] == "7"
    replayed = container.download_blob(REPLAYED_PREFIX + unknown).readall()
    assert replayed == fixable

    # Replayed dead letters are not replayed again.
    result = _cli(*args, env=fixed)
    assert "received=1 emitted=0 skipped=0 dead_lettered=1" in result.stderr
