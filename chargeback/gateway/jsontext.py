"""JSON decoding for text that may have been cut short.

APIM cuts any log-to-eventhub message over 200 KB, so both the outer gateway message and the
bodies inside it can end mid-value. :func:`loads_prefix` returns what the valid prefix holds:
every complete value, and a string value that was cut keeps the characters that arrived.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice
from typing import Any, NamedTuple

import orjson

__all__ = ["MAX_DEPTH", "Prefix", "cut_container", "loads", "loads_prefix"]

#: Deeper nesting than this is refused: no real OpenAI body comes close, and a hostile one
#: must not exhaust the stack.
MAX_DEPTH = 256

_NOT_BRACKETS = re.compile(r"[^{}\[\]]+")
_DELIMITERS = frozenset(",: \t\r\n")
# What ends a number or literal (the scanner this replaced treated ":" as part of one).
_SCALAR_END = frozenset(", \t\r\n")
_CLOSER = {"{": "}", "[": "]"}


#: Decode complete JSON; raises ``ValueError`` (orjson's error is one). orjson's own function
#: rather than a wrapper: it runs once per line of every stream.
loads: Callable[[bytes | str], Any] = orjson.loads


class Prefix(NamedTuple):
    value: Any
    #: The text was cut short and closed here.
    truncated: bool = False
    #: The last member of the outermost container was itself cut (a partial string, or a
    #: container closed early): it is not the value that was sent.
    last_cut: bool = False


def loads_prefix(text: str) -> Prefix:
    """Decode JSON that may be cut short.

    Raises ``ValueError`` when the text is not a prefix of a JSON object or array, or holds
    nothing usable.
    """
    if not cut_container(text):
        try:
            return Prefix(orjson.loads(text))
        except orjson.JSONDecodeError:
            pass
    if not text.lstrip().startswith(("{", "[")):
        raise ValueError("not JSON, nor the start of a JSON object or array")
    scan = _Scan(text)
    scan.run()
    if scan.open_value_string is not None:
        repaired = _without_partial_escape(text) + '"' + scan.closers()
    else:
        repaired = text[: scan.safe] + scan.closers()
    try:
        value = orjson.loads(repaired)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON prefix: {exc}") from None
    last_cut = scan.open_value_string is not None or len(scan.stack) > 1
    return Prefix(value, truncated=True, last_cut=last_cut)


def cut_container(text: str) -> bool:
    """An object or array that does not end with its closing bracket: certainly cut, so the
    first, whole decode (as long as the text, and bound to fail) is not tried."""
    return text[:1] in ("{", "[") and text[-1:] not in ("}", "]", " ", "\t", "\r", "\n")


def _without_partial_escape(head: str) -> str:
    # A cut can fall inside "\uXXXX" or right after a backslash; drop the incomplete escape.
    tail = head[-6:]
    index = tail.rfind("\\")
    if index < 0:
        return head
    escape = tail[index:]
    # Count the backslashes before it: an even run means this one is itself escaped.
    run = len(head) - len(tail) + index
    slashes = 0
    while run - slashes - 1 >= 0 and head[run - slashes - 1] == "\\":
        slashes += 1
    if slashes % 2:
        return head
    complete = len(escape) >= 2 and (escape[1] != "u" or len(escape) >= 6)
    return head if complete else head[: len(head) - len(escape)]


class _Scan:
    """Where the text can be cut and closed into valid JSON (``safe``, with ``safe_depth`` open
    containers), the containers open at the end (``stack``), and whether the text ends inside a
    string value (``open_value_string``, where it starts).

    Bodies are up to 200 KB and mostly string content, so the work is done with ``str`` methods
    that run in C: escapes are blanked (same length), the text is split on quotes (odd pieces
    are inside strings), and only the brackets outside strings are looked at one by one. The safe
    place is then found by looking back from the end, past at most one key and one scalar.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack: list[str] = []
        self.safe = 0
        self.safe_depth = 0
        self.open_value_string: int | None = None

    def closers(self) -> str:
        stack = self.stack if self.open_value_string is not None else self.stack[: self.safe_depth]
        return "".join(_CLOSER[c] for c in reversed(stack))

    def run(self) -> None:
        text = self.text
        pieces = _split_strings(text)
        if isinstance(pieces, str):
            text, pieces = pieces, pieces.split('"')
        stack = self.stack
        _open_containers(_NOT_BRACKETS.sub("", "".join(pieces[::2])), stack)
        self.safe_depth = len(stack)
        last_quote = text.rfind('"')
        if len(pieces) % 2 == 0:  # the text ends inside the string that starts at last_quote
            if self._is_key(text, last_quote):
                self.safe = self._before_key(text, last_quote)
            else:
                self.open_value_string = last_quote
            return
        # After the last quote, only brackets, scalars, commas, colons and white space.
        after = last_quote + 1
        bracket = max(text.rfind(c, after) for c in "{}[]")
        start = max(after, bracket + 1)
        safe = _last_scalar_end(text, start)
        if safe is not None:
            self.safe = safe
        elif bracket >= 0 or last_quote < 0:
            self.safe = start  # just after the last bracket (or nothing usable yet)
        else:
            opening = text.rfind('"', 0, last_quote)
            if self._is_key(text, opening):
                self.safe = self._before_key(text, opening)
            else:
                self.safe = start  # just after a string value

    def _is_key(self, text: str, quote: int) -> bool:
        """Whether the string that opens at ``quote`` is an object key."""
        if not self.stack or self.stack[-1] != "{":
            return False
        return _previous(text, quote)[1] in ("{", ",")

    def _before_key(self, text: str, quote: int) -> int:
        """The safe place before the key that opens at ``quote``: after the ``{`` that opens the
        object, or at the ``,`` that ends the member before (the value before it is whole)."""
        position, c = _previous(text, quote)
        return position + 1 if c == "{" else position


def _split_strings(text: str) -> list[str] | str:
    """``text`` split on its quotes; or, when it holds an escaped quote, the text with its
    escapes blanked (same length, to be split), so that no escaped quote is left to be mistaken
    for the end of a string. Without a backslash before a quote there is none.

    A search for a backslash and a quote is slow in text with many backslashes; with few quotes
    for its length (as its start shows), the pieces tell instead (a piece before a quote ends
    with the backslash). Either way the answer is the same."""
    if text.count('"', 0, 8192) > 128:
        if '\\"' not in text:
            return text.split('"')
    else:
        pieces = text.split('"')
        if not any(piece[-1:] == "\\" for piece in islice(pieces, len(pieces) - 1)):
            return pieces
    return text.replace("\\\\", "__").replace('\\"', "_'")


def _open_containers(brackets: str, stack: list[str]) -> None:
    """Push and pop ``brackets`` (brackets only, in order) on ``stack``."""
    for c in brackets:
        if c in "{[":
            if len(stack) >= MAX_DEPTH:
                raise ValueError("JSON nested too deeply")
            stack.append(c)
        elif stack:
            stack.pop()
        else:
            raise ValueError("unbalanced JSON")


def _previous(text: str, position: int) -> tuple[int, str]:
    """The last character before ``position`` that is not white space, and where it is."""
    position -= 1
    while position >= 0 and text[position] in " \t\r\n":
        position -= 1
    return position, text[position] if position >= 0 else ""


def _last_scalar_end(text: str, start: int) -> int | None:
    """Where the last complete number or literal after ``start`` ends (a delimiter follows it);
    ``text[start:]`` holds no string and no bracket."""
    i = len(text)
    while i > start and text[i - 1] not in _SCALAR_END:
        i -= 1  # a scalar that reaches the end may be cut ("12" of "123"): not safe
    while i > start and text[i - 1] in _DELIMITERS:
        i -= 1
    return i if i > start else None
