"""Progress of a long command on standard error, with tqdm: a bar when standard error is a
terminal, nothing at all when it is piped or redirected (tqdm's ``disable=None``: "set to None,
disable on non-TTY", tqdm's documentation, Parameters). The bar is cleared when the command ends
(``leave=False``), so a finished run leaves only its own summary lines.

Lines a command writes while the bar shows (an outcome per message, a bench figure) go through
`Progress.write`, which prints them above the bar instead of through it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from tqdm import tqdm

__all__ = ["Progress", "count_lines"]

T = TypeVar("T")


class _Bar(tqdm):  # type: ignore[misc]  # tqdm ships no types
    """tqdm without its monitor thread (``monitor_interval = 0``, tqdm's documentation,
    "Monitoring thread, intervals and miniters"): it only corrects bars that stop updating, and
    a thread left running at exit is what the tests forbid (tests/conftest.py)."""

    monitor_interval = 0


class Progress:
    """One bar; use as a context manager."""

    def __init__(
        self,
        description: str,
        *,
        total: int | None = None,
        unit: str = "message",
        stream: IO[str] | None = None,
        shown: bool = True,
    ) -> None:
        self._stream = stream or sys.stderr
        self._bar = _Bar(
            desc=description,
            total=total,
            unit=f" {unit}s",
            file=self._stream,
            disable=None if shown else True,
            leave=False,
            dynamic_ncols=True,
        )

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (standard error is a terminal)."""
        return not self._bar.disable

    def expect(self, total: int) -> None:
        """The total, once it is known."""
        self._bar.total = total
        self._bar.refresh()

    def advance(self, count: int = 1) -> None:
        self._bar.update(count)

    def stage(self, name: str) -> None:
        """Name what runs now, beside the bar."""
        self._bar.set_postfix_str(name)

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """The items, the bar advancing as each is taken."""
        for item in items:
            yield item
            self._bar.update(1)

    def write(self, text: str, stream: IO[str] | None = None) -> int:
        """Print ``text`` (lines ending in newlines) above the bar, to ``stream`` (default:
        the bar's own)."""
        target = stream or self._stream
        for line in text.splitlines():
            if self.shown:
                self._bar.write(line, file=target)
            else:
                target.write(line + "\n")
        target.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def count_lines(path: Path) -> int | None:
    """The number of lines of a regular file (the bar's total), or None for anything else
    (standard input, a pipe)."""
    if not path.is_file():
        return None
    count = 0
    last = b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")
