"""Dead letters: messages that can never be processed, kept byte for byte with the reason.

Nothing is dropped. A sink that cannot store a dead letter raises `DeadLetterUnavailable`, so
the batch is retried rather than the message lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

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
    "StoredDeadLetter",
    "raw_from_metadata",
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
        return {key: _header_safe(str(value)) for key, value in values.items() if value is not None}


def _header_safe(value: str) -> str:
    """Printable ASCII only: metadata travels as HTTP headers (no line breaks, no Unicode)."""
    return "".join(c if " " <= c <= "~" else "?" for c in value)[:1024]


#: Where a replayed dead letter is moved once it was emitted or skipped: kept for the audit
#: trail, out of the way of the next replay.
REPLAYED_PREFIX = "replayed/"


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter read back from the store: its blob name and the message as received."""

    name: str
    raw: RawMessage
    reason: str
    detail: str


def raw_from_metadata(body: bytes, metadata: dict[str, str]) -> RawMessage:
    """The message as the Function received it, position and all, from a dead letter."""
    sequence = metadata.get("sequence_number")
    enqueued = metadata.get("enqueued_time")
    return RawMessage(
        body=body,
        partition=metadata.get("partition"),
        sequence_number=int(sequence) if sequence and sequence.lstrip("-").isdigit() else None,
        offset=metadata.get("offset"),
        enqueued_time=datetime.fromisoformat(enqueued) if enqueued else None,
    )


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


_NOT_SIGNED_IN = (
    "cannot sign in to the dead-letter store: on a workstation run `az login` (or `azd auth"
    " login`); in Azure, check the Function's identity has Storage Blob Data Contributor"
)


def _operator_login() -> Any:
    """The operator's own sign-in, tried in a moment: the Azure CLI's and the Developer CLI's,
    then a service principal from the environment. (DefaultAzureCredential would first probe
    for a managed identity, which on a workstation takes tens of seconds to give up.)"""
    from azure.identity import (
        AzureCliCredential,
        AzureDeveloperCliCredential,
        ChainedTokenCredential,
        EnvironmentCredential,
    )

    return ChainedTokenCredential(
        AzureCliCredential(), AzureDeveloperCliCredential(), EnvironmentCredential()
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BlobDeadLetters:
    """Dead letters in an Azure Blob Storage container (Azurite locally): the original bytes,
    with the reason and the Event Hub position as blob metadata.

    Writing the same dead letter twice (a batch run again) writes the same blob again: names
    depend only on the message, its position and the reason. `read` reads them back for
    ``python -m chargeback replay --from-container``; `settle` moves one that replayed well
    under ``replayed/``.
    """

    def __init__(self, container: Any) -> None:
        self._container = container
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobDeadLetters:
        """The container of the app settings, reached as the Function reaches it."""
        if settings.deadletter_connection_string:
            return cls.connect(
                settings.deadletter_connection_string,
                settings.deadletter_container,
                setting="DeadLetterStorage",
            )
        credential: Any = None
        if settings.deadletter_service_uri:
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=settings.deadletter_client_id)
        return cls.connect(
            settings.deadletter_service_uri,
            settings.deadletter_container,
            credential=credential,
            setting="DeadLetterStorage__serviceUri",
        )

    @classmethod
    def connect(
        cls,
        storage: str | None,
        container: str,
        *,
        credential: Any = None,
        setting: str = "--storage",
    ) -> BlobDeadLetters:
        """``storage`` is a connection string (Azurite) or a blob endpoint URL, reached with
        ``credential`` (default: an operator's own sign-in, ``az login`` or ``azd auth
        login``). ``setting`` names where the value came from, for the error."""
        from azure.storage.blob import BlobServiceClient

        if not storage:
            raise ConfigurationError(
                "no dead-letter store: set DeadLetterStorage__serviceUri (Azure) or "
                "DeadLetterStorage (a connection string, e.g. Azurite)"
            )
        if storage.startswith(("http://", "https://")):
            if urlsplit(storage).hostname is None:
                raise ConfigurationError(f"{setting} is not a blob endpoint URL")
            service = BlobServiceClient(storage, credential=credential or _operator_login())
        else:
            if "__serviceUri" in setting:
                raise ConfigurationError(
                    f"{setting} is not a blob endpoint URL (https://<account>.blob.core.windows.net/)"
                )
            try:
                service = BlobServiceClient.from_connection_string(storage)
            except ValueError:
                # Not echoed: a connection string holds the account key.
                raise ConfigurationError(f"{setting} is not a valid connection string") from None
        return cls(service.get_container_client(container))

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

    def read(self, prefix: str = "") -> Iterator[StoredDeadLetter]:
        """Every dead letter whose name starts with ``prefix`` (e.g. ``2026/11/20/``), oldest
        day first, without those already replayed."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            ResourceNotFoundError,
        )

        try:
            # Names first: a replay writes and moves blobs while it reads them.
            names = [
                item.name
                for item in self._container.list_blobs(name_starts_with=prefix or None)
                if not item.name.startswith(REPLAYED_PREFIX)
            ]
        except ResourceNotFoundError:
            return
        except ClientAuthenticationError:
            raise DeadLetterUnavailable(_NOT_SIGNED_IN) from None
        except AzureError as exc:
            raise DeadLetterUnavailable(f"cannot list dead letters: {_first_line(exc)}") from exc
        for name in names:
            try:
                download = self._container.get_blob_client(name).download_blob()
                metadata = dict(download.properties.metadata or {})
                body = download.readall()
            except ResourceNotFoundError:
                continue  # settled meanwhile
            except AzureError as exc:
                raise DeadLetterUnavailable(f"cannot read dead letter {name}: {exc}") from exc
            yield StoredDeadLetter(
                name=name,
                raw=raw_from_metadata(body, metadata),
                reason=metadata.get("reason", ""),
                detail=metadata.get("detail", ""),
            )

    def settle(self, letter: StoredDeadLetter) -> str:
        """Move a replayed dead letter under ``replayed/``, bytes and metadata unchanged."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        target = REPLAYED_PREFIX + letter.name
        try:
            source = self._container.get_blob_client(letter.name)
            download = source.download_blob()
            self._container.upload_blob(
                target,
                download.readall(),
                metadata=dict(download.properties.metadata or {}),
                overwrite=True,
            )
            source.delete_blob()
        except ResourceNotFoundError:
            pass  # settled already, by an earlier run
        except AzureError as exc:
            raise DeadLetterUnavailable(f"cannot settle dead letter {letter.name}: {exc}") from exc
        return target

    def delete(self, name: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise DeadLetterUnavailable(f"cannot delete dead letter {name}: {exc}") from exc
