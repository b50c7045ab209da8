"""A batch's account, and the loop that runs batches as the Functions host does.

Every item of a batch (a message, or a record of a resource-log message) ends as exactly one
`Outcome`: emitted, skipped with a stated reason, or dead-lettered. `run_batches` reruns a batch
that raised a `TransientError`, as the Event Hubs trigger's retry policy does, before the next.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from chargeback.errors import TransientError
from chargeback.receive import RawMessage

if TYPE_CHECKING:
    from chargeback.pipeline import Processor

__all__ = ["BATCH_SIZE", "BatchReport", "Lines", "Outcome", "batches", "run_batches"]

#: What one Function invocation typically receives (host.json maxEventBatchSize).
BATCH_SIZE = 100

OutcomeKind = Literal["emitted", "skipped", "dead-lettered"]


class Outcome(NamedTuple):
    """How one item ended: a message, or one record of a resource-log message (CONTRACTS §1d,
    several records a message). A named tuple: one is made per item."""

    kind: OutcomeKind
    reason: str = ""
    request_id: str | None = None
    #: For a dead letter, what was wrong (never message content).
    detail: str = ""


@dataclass
class BatchReport:
    """How every item of a batch ended. ``received == emitted + skipped + dead_lettered``;
    ``received`` counts messages, and each record of a resource-log message on its own."""

    outcomes: list[Outcome] = field(default_factory=list)
    #: For each outcome, the position of its message in the batch.
    positions: list[int] = field(default_factory=list)

    def add(self, position: int, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.positions.append(position)

    def extend(self, other: BatchReport, offset: int = 0) -> None:
        self.outcomes.extend(other.outcomes)
        self.positions.extend(offset + position for position in other.positions)

    def by_message(self, batch: Sequence[RawMessage]) -> Iterator[tuple[RawMessage, Outcome]]:
        """Each outcome with the message it came from."""
        for position, outcome in zip(self.positions, self.outcomes, strict=True):
            yield batch[position], outcome

    @property
    def received(self) -> int:
        return len(self.outcomes)

    def count(self, kind: OutcomeKind) -> int:
        return sum(1 for outcome in self.outcomes if outcome.kind == kind)

    @property
    def emitted(self) -> int:
        return self.count("emitted")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def dead_lettered(self) -> int:
        return self.count("dead-lettered")

    def reasons(self) -> Counter[str]:
        return Counter(f"{o.kind}:{o.reason}" for o in self.outcomes if o.reason)

    def summary(self) -> str:
        return (
            f"received={self.received} emitted={self.emitted} "
            f"skipped={self.skipped} dead_lettered={self.dead_lettered}"
        )


def batches(messages: Iterator[RawMessage], size: int = BATCH_SIZE) -> Iterator[list[RawMessage]]:
    while batch := list(islice(messages, size)):
        yield batch


class Lines(Protocol):
    """Where `run_batches` reports retries and what was not emitted: a text stream, or a
    command's progress bar, which prints above itself."""

    def write(self, text: str, /) -> int: ...


def run_batches(
    processor: Processor,
    messages: Iterator[RawMessage],
    *,
    retries: int = 5,
    backoff: float = 1.0,
    errors: Lines = sys.stderr,
    after_batch: Callable[[list[RawMessage], BatchReport], None] | None = None,
) -> BatchReport:
    """Process batches as the Function does; a transient failure reruns the whole batch, as the
    Event Hubs retry policy would. ``after_batch`` runs once a batch was delivered (where the
    Function's checkpoint would move)."""
    total = BatchReport()
    offset = 0
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
        for raw, outcome in report.by_message(batch):
            if outcome.kind != "emitted":
                detail = f": {outcome.detail}" if outcome.detail else ""
                errors.write(f"{raw.describe()}: {outcome.kind} ({outcome.reason}){detail}\n")
        if after_batch is not None:
            after_batch(batch, report)
        total.extend(report, offset)
        offset += len(batch)
    return total
