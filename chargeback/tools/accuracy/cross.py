"""The cross-validated table: the category table per file and per held-out source, with the
figures the targets are set on (sides counted, flagged sides, unflagged large errors)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chargeback.tools.accuracy.measurement import (
    CATEGORIES,
    DEVELOPMENT_SOURCES,
    NOT_ESTIMABLE,
    OTHER_FAMILIES,
    Measurement,
    Summary,
    every_error,
)

__all__ = ["CrossRow", "cross_validated"]

_CV_HEADER = (
    f"{'  scope / category':<30} {'calls':>5} {'p.n':>5} {'exact':>6} {'±2':>6} {'±10%':>6}"
    f" {'c.n':>5} {'±1':>6} {'flag.p':>6} {'flag.c':>6} {'off>10%':>7}"
)


@dataclass(frozen=True, slots=True)
class CrossRow:
    """One category of one scope: the figures the targets are set on."""

    calls: int
    prompt: Summary  # over the sides counted (visible; every side for other families)
    prompt_tenth: float  # share of those sides within 10% of the reported count
    completion: Summary
    flagged_prompt: int  # calls whose prompt side carries a flag saying it cannot be exact
    flagged_completion: int
    #: counted prompt sides off by more than 10% (and more than 10 tokens) with no flag saying
    #: so: the worst outcome for a bill
    unflagged_large: int

    @classmethod
    def of(cls, rows: Sequence[Measurement]) -> CrossRow:
        counted = {
            side: [r for r in rows if _counted(r, side)] for side in ("prompt", "completion")
        }
        prompt = counted["prompt"]
        tenth = [r for r in prompt if abs(r.prompt_error or 0) <= r.reported_prompt / 10]
        return cls(
            calls=len(rows),
            prompt=Summary.of(every_error(prompt, "prompt")),
            prompt_tenth=len(tenth) / len(prompt) if prompt else 0.0,
            completion=Summary.of(every_error(counted["completion"], "completion")),
            flagged_prompt=sum(1 for r in rows if _flagged(r, "prompt")),
            flagged_completion=sum(1 for r in rows if _flagged(r, "completion")),
            unflagged_large=sum(1 for r in prompt if not _flagged(r, "prompt") and _large(r)),
        )

    def line(self, name: str) -> str:
        return (
            f"{name:<30} {self.calls:>5} {self.prompt.count:>5} {self.prompt.exact:>6.1%}"
            f" {self.prompt.within2:>6.1%} {self.prompt_tenth:>6.1%} {self.completion.count:>5}"
            f" {self.completion.within1:>6.1%} {self.flagged_prompt:>6}"
            f" {self.flagged_completion:>6} {self.unflagged_large:>7}"
        )


def _counted(row: Measurement, side: str) -> bool:
    error = row.prompt_error if side == "prompt" else row.completion_error
    if error is None:
        return False
    return row.category == OTHER_FAMILIES or row.reason(side) is None


def _flagged(row: Measurement, side: str) -> bool:
    return row.category == OTHER_FAMILIES or row.reason(side) is not None


def _large(row: Measurement) -> bool:
    error = abs(row.prompt_error or 0)
    return error > 10 and error > row.reported_prompt / 10


def cross_validated(measurements: Sequence[Measurement]) -> Iterator[str]:
    """The category table per file and per held-out source (distinct calls, as measured)."""
    yield ""
    yield (
        "Cross-validated: rules as fitted on the development sources"
        f" ({', '.join(sorted(DEVELOPMENT_SOURCES))}), measured per file and per held-out source."
    )
    yield (
        "p.n / c.n: sides counted (content the bodies show; for other families every side);"
        " flag.p / flag.c: calls whose side is flagged as not exact;"
    )
    yield (
        "off>10%: counted prompt sides off by more than 10% and 10 tokens with no flag saying so."
    )
    yield _CV_HEADER
    emitted = [m for m in measurements if m.category != NOT_ESTIMABLE]
    files = list(dict.fromkeys(m.file for m in emitted))
    for file in files:
        rows = [m for m in emitted if m.file == file]
        yield from _scope(f"{file or 'records'} ({_role(rows)})", rows)
    held = [m for m in emitted if m.source not in DEVELOPMENT_SOURCES]
    sources = list(dict.fromkeys(m.source for m in held))
    held_files = {m.file for m in held}
    # All held-out calls together, unless one file's block above already is exactly that.
    if len(held_files) > 1 or any(
        _development([m for m in emitted if m.file == f]) for f in held_files
    ):
        yield from _scope(f"held out, {len(sources)} sources together", held)
    for source in sources:
        yield from _scope(
            f"held out: {source or 'no src'}", [m for m in held if m.source == source]
        )


def _development(rows: Sequence[Measurement]) -> int:
    return sum(1 for m in rows if m.source in DEVELOPMENT_SOURCES)


def _role(rows: Sequence[Measurement]) -> str:
    development = _development(rows)
    if development == len(rows):
        return "development: rules fitted here"
    return "held out" if development == 0 else "mixed"


def _scope(title: str, rows: Sequence[Measurement]) -> Iterator[str]:
    yield title
    for name in CATEGORIES:
        chosen = [m for m in rows if m.category == name]
        if chosen:
            yield CrossRow.of(chosen).line(f"  {name}")
    standard = [m for m in rows if m.category != OTHER_FAMILIES]
    yield CrossRow.of(standard).line("  all but other families")
