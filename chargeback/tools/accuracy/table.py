"""The accuracy table: per category, the estimate's errors on the sides the bodies show; the
sides they cannot show, by reason; other families; then the cross-validated table and the last
line of CONTRACTS §3."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from chargeback.tools.accuracy.cross import cross_validated
from chargeback.tools.accuracy.measurement import (
    APPROXIMATE,
    CATEGORIES,
    DEVELOPMENT_SOURCES,
    NOT_ESTIMABLE,
    OTHER_FAMILIES,
    REASONS,
    Measurement,
    Summary,
    every_error,
)

__all__ = ["report"]

_HEADER = (
    f"{'category':<22} {'side':<11} {'n':>4} {'exact':>6} {'±1':>6} {'±2':>6}"
    f" {'mean|err|':>9} {'worst':>7}"
)


def _row(name: str, side: str, summary: Summary) -> str:
    return (
        f"{name:<22} {side:<11} {summary.count:>4} {summary.exact:>6.1%} {summary.within1:>6.1%}"
        f" {summary.within2:>6.1%} {summary.mean_abs:>9.2f} {summary.worst:>+7d}"
    )


def _errors(rows: Iterable[Measurement], side: str, reason: str | None = None) -> list[int]:
    """Errors of one side over the rows whose side is visible (reason None) or not estimable
    for that reason."""
    found = (
        row.prompt_error if side == "prompt" else row.completion_error
        for row in rows
        if row.reason(side) == reason
    )
    return [error for error in found if error is not None]


def _fraction(rows: Sequence[Measurement], side: str, limit: int, every: bool = False) -> float:
    """Share of errors within ``limit``: over the visible sides, or over ``every`` side."""
    if every:
        found = (row.prompt_error if side == "prompt" else row.completion_error for row in rows)
        errors = [error for error in found if error is not None]
    else:
        errors = _errors(rows, side)
    return sum(1 for e in errors if abs(e) <= limit) / len(errors) if errors else 0.0


def report(measurements: Sequence[Measurement]) -> Iterator[str]:
    """The table over every measured call, the cross-validated table, then the last line of
    CONTRACTS §3."""
    yield "Estimated tokens against the usage the API reported (error = estimate - reported)."
    yield "Completion side: reported completion minus reasoning tokens, which no body shows."
    yield "Categories count only sides whose content the bodies show; the rest are listed below."
    yield _HEADER
    emitted = [m for m in measurements if m.category != NOT_ESTIMABLE]
    estimated = [m for m in emitted if m.category != OTHER_FAMILIES]
    for name in CATEGORIES[:-1]:
        rows = [m for m in estimated if m.category == name]
        if rows:
            yield _row(name, "prompt", Summary.of(_errors(rows, "prompt")))
            yield _row("", "completion", Summary.of(_errors(rows, "completion")))
    yield _row("all visible", "prompt", Summary.of(_errors(estimated, "prompt")))
    yield _row("", "completion", Summary.of(_errors(estimated, "completion")))
    yield "not estimable from the bodies (a call counts once per side, under its first reason):"
    excluded: dict[str, int] = {}
    for reason, text in REASONS.items():
        for side in ("prompt", "completion"):
            errors = _errors(estimated, side, reason)
            if errors:
                excluded[f"{side}:{reason}"] = len(errors)
                yield _row(f"  {reason}", side, Summary.of(errors)) + f"  {text}"
    others = [m for m in emitted if m.category == OTHER_FAMILIES]
    yield f"{OTHER_FAMILIES} (no OpenAI tokenizer: estimated approximately, flagged {APPROXIMATE}):"
    yield _row("  approximated", "prompt", Summary.of(every_error(others, "prompt")))
    yield _row("", "completion", Summary.of(every_error(others, "completion")))
    skipped = len(measurements) - len(emitted)
    yield f"{NOT_ESTIMABLE:<22} (the pipeline emitted no event) {skipped:>4}"
    yield from cross_validated(measurements)
    visible = {side: len(_errors(estimated, side)) for side in ("prompt", "completion")}
    held = [m for m in estimated if m.source not in DEVELOPMENT_SOURCES]
    yield (
        f"accuracy: measured={len(measurements)} estimated={len(estimated)}"
        f" not_estimable={skipped} other_families={len(others)}"
        f" prompt_exact={_fraction(estimated, 'prompt', 0):.4f}"
        f" prompt_within2={_fraction(estimated, 'prompt', 2):.4f}"
        f" completion_exact={_fraction(estimated, 'completion', 0):.4f}"
        f" completion_within1={_fraction(estimated, 'completion', 1):.4f}"
        f" prompt_visible={visible['prompt']} completion_visible={visible['completion']}"
        # the same two fractions over every estimated call, what the bodies show or not
        f" prompt_exact_all={_fraction(estimated, 'prompt', 0, every=True):.4f}"
        f" completion_within1_all={_fraction(estimated, 'completion', 1, every=True):.4f}"
        # the headline fractions on the calls of sources the rules were not fitted on
        f" heldout={len(held)}"
        f" heldout_prompt_exact={_fraction(held, 'prompt', 0):.4f}"
        f" heldout_prompt_within2={_fraction(held, 'prompt', 2):.4f}"
        f" heldout_completion_within1={_fraction(held, 'completion', 1):.4f}"
        + "".join(f" excluded[{key}]={count}" for key, count in excluded.items())
    )
