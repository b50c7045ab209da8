"""Dead letters: messages that can never be processed, kept byte for byte with the reason.

Nothing is dropped. A sink that cannot store a dead letter raises `DeadLetterUnavailable`, so
the batch is retried rather than the message lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chargeback.errors import ConfigurationError, DeadLetterUnavailable
from chargeback.receive import RawMessage

if TYPE_CHECKING:
    from chargeback.settings import Settings

__all__ = [
    "BlobDeadLetters",
    "DeadLetter",
    "DeadLetterSink",
    "DirectoryDeadLetters",
    "MemoryDeadLetters",
]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: RawMessage
    #: Short machine-readable reason (``BadMessage.reason``), e.g. ``malformed``.
    reason: str
    #: What was wrong, for the operator. Never message content.
    detail: str

    def name(self, now: datetime | None = None) -> str:
        """``YYYY/MM/DD/<reason>/<partition>-<sequence>-<hash>.json``: sortable by day, grouped by
        reason, unique per message, so an operator can find and replay them."""
        when = self.raw.enqueued_time or now or datetime.now(UTC)
        digest = hashlib.sha256(self.raw.body).hexdigest()[:16]
        partition = self.raw.partition if self.raw.partition is not None else "x"
        sequence = self.raw.sequence_number if self.raw.sequence_number is not None else "x"
        return f"{when:%Y/%m/%d}/{self.reason}/{partition}-{sequence}-{digest}.json"

    def metadata(self) -> dict[str, str]:
        """Blob metadata: ASCII only, as the Blob service requires."""
        values = {
            "reason": self.reason,
            "detail": self.detail,
            "partition": self.raw.partition,
            "sequence_number": self.raw.sequence_number,
            "offset": self.raw.offset,
            "enqueued_time": self.raw.enqueued_time.isoformat() if self.raw.enqueued_time else None,
        }
        return {
            key: str(value).encode("ascii", "replace").decode("ascii")[:1024]
            for key, value in values.items()
            if value is not None
        }


class DeadLetterSink(Protocol):
    def put(self, letter: DeadLetter) -> None: ...


@dataclass
class MemoryDeadLetters:
    letters: list[DeadLetter] = field(default_factory=list)

    def put(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


class DirectoryDeadLetters:
    """Dead letters as files: the original bytes, and ``<name>.meta.json`` beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, letter: DeadLetter) -> None:
        path = self.root / letter.name()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(letter.raw.body)
            path.with_suffix(".meta.json").write_text(json.dumps(letter.metadata(), indent=2))
        except OSError as exc:
            raise DeadLetterUnavailable(f"cannot write dead letter {path}: {exc}") from exc


class BlobDeadLetters:
    """Dead letters in an Azure Blob Storage container (Azurite locally): the original bytes,
    with the reason and the Event Hub position as blob metadata."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobDeadLetters:
        from azure.storage.blob import BlobServiceClient

        if settings.deadletter_connection_string:
            service = BlobServiceClient.from_connection_string(
                settings.deadletter_connection_string
            )
        elif settings.deadletter_service_uri:
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=settings.deadletter_client_id)
            service = BlobServiceClient(settings.deadletter_service_uri, credential=credential)
        else:
            raise ConfigurationError(
                "no dead-letter store: set DeadLetterStorage__serviceUri (Azure) or "
                "DeadLetterStorage (a connection string, e.g. Azurite)"
            )
        return cls(service.get_container_client(settings.deadletter_container))

    def put(self, letter: DeadLetter) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._ready = True
            self._container.upload_blob(
                letter.name(), letter.raw.body, metadata=letter.metadata(), overwrite=True
            )
        except AzureError as exc:
            raise DeadLetterUnavailable(f"cannot write dead letter {letter.name()}: {exc}") from exc
