"""JSON decoding for text that may have been cut short.

APIM cuts any log-to-eventhub message over 200 KB, so both the outer gateway message and the
bodies inside it can end mid-value. :func:`loads_prefix` returns what the valid prefix holds:
every complete value, and a string value that was cut keeps the characters that arrived.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

__all__ = ["MAX_DEPTH", "Prefix", "loads", "loads_prefix"]

#: Deeper nesting than this is refused: no real OpenAI body comes close, and a hostile one
#: must not exhaust the stack.
MAX_DEPTH = 256

_STRING_BODY = re.compile(r'[^"\\]*')
_CLOSER = {"{": "}", "[": "]"}


def loads(data: bytes | str) -> Any:
    """Decode complete JSON; raises ``ValueError`` (orjson's error is one)."""
    return orjson.loads(data)


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
    """One pass over the text, noting the last place where closing the open containers gives
    valid JSON (``safe``) and whether the text ends inside a string value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack: list[str] = []
        self.safe = 0
        self.safe_depth = 0
        self.open_value_string: int | None = None
        # In an object, True while the next string is a key.
        self.expect_key = False

    def closers(self) -> str:
        stack = self.stack if self.open_value_string is not None else self.stack[: self.safe_depth]
        return "".join(_CLOSER[c] for c in reversed(stack))

    def _mark_safe(self, position: int) -> None:
        self.safe = position
        self.safe_depth = len(self.stack)

    def run(self) -> None:  # noqa: PLR0912 - one branch per JSON token kind
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c in "{[":
                if len(self.stack) >= MAX_DEPTH:
                    raise ValueError("JSON nested too deeply")
                self.stack.append(c)
                self.expect_key = c == "{"
                i += 1
                self._mark_safe(i)
            elif c in "}]":
                if not self.stack:
                    raise ValueError("unbalanced JSON")
                self.stack.pop()
                self.expect_key = False
                i += 1
                self._mark_safe(i)
            elif c == '"':
                is_key = self.expect_key
                end = self._string_end(i + 1)
                if end is None:
                    if not is_key:
                        self.open_value_string = i
                    return
                i = end
                if not is_key:
                    self._mark_safe(i)
            elif c == ",":
                self.expect_key = bool(self.stack) and self.stack[-1] == "{"
                i += 1
            elif c == ":":
                self.expect_key = False
                i += 1
            elif c in " \t\r\n":
                i += 1
            else:
                # A number or literal: safe only once a delimiter shows it is complete.
                j = i
                while j < n and text[j] not in ",}] \t\r\n":
                    j += 1
                if j == n:
                    return
                i = j
                self._mark_safe(i)

    def _string_end(self, start: int) -> int | None:
        """Index just past the closing quote of the string whose body starts at ``start``."""
        text, n, i = self.text, len(self.text), start
        while True:
            m = _STRING_BODY.match(text, i)
            i = m.end() if m else i
            if i >= n:
                return None
            if text[i] == '"':
                return i + 1
            i += 2  # a backslash and the character it escapes
            if i > n:
                return None
