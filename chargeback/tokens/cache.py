"""Count repeated text once: a chat application re-sends its whole history on every turn, so most
of what a conversation's next call asks to estimate was counted a moment ago.

`TokenCountCache` keeps the token count of each text (a message's content, a role, a tool
call's arguments, rendered tool definitions: whatever `Counting.text` is asked) under a hash of
the text and the encoding, so an estimate costs tokenizing what is new plus hashing what is not.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["Encoding", "TokenCountCache"]


class Encoding(Protocol):
    """What the cache needs of an encoding (a `tiktoken.Encoding` has it)."""

    @property
    def name(self) -> str: ...

    def encode_ordinary(self, text: str) -> list[int]: ...


class TokenCountCache:
    """Token counts of texts already counted, bounded, shared by the threads of one process.

    Keyed by the encoding's name, the text's length and its 64-bit hash (Python's own SipHash,
    under a key drawn at random when the process starts, so no text can be crafted to collide):
    the text is never kept, and hashing it reads it once without a copy (about 5 µs for 10,000
    characters, where tokenizing them takes about 500 µs). A wrong count would take two
    different texts of the same length with the same 64-bit hash in one process: about one
    chance in 10^15 per lookup against a full cache, for a call that is an estimate anyway. (A
    SHA-256 digest of the UTF-8 text instead measured 50% slower on the benchmark's
    conversation mix, most of it in encoding the text and making the hash object.)

    Two generations of at most ``entries`` each: new counts go to the young one; when it is full
    it becomes the old one and the previous old one is dropped; a count found in the old one is
    copied to the young one. Memory is bounded by ``2 * entries`` entries of about 200 bytes
    (16,384 by default: about 3 MB), and what a conversation keeps re-sending stays.

    Several batches may count at once (the runtime's thread pool): the generations change under
    a lock; a count is worked out outside it, so two threads may count the same new text once
    each, and store the same number. Counts are ``len(encode_ordinary(text))``, as
    `chargeback.tokens.encodings.count_text`.
    """

    def __init__(self, entries: int = 8192) -> None:
        self.entries = max(1, entries)
        self._young: dict[tuple[str, int, int], int] = {}
        self._old: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()

    def count(self, text: str, encoding: Encoding) -> int:
        key = (encoding.name, len(text), hash(text))
        found = self._young.get(key)
        if found is not None:
            return found
        found = self._old.get(key)
        if found is None:
            found = len(encoding.encode_ordinary(text))
        with self._lock:
            if len(self._young) >= self.entries:
                self._old, self._young = self._young, {}
            self._young[key] = found
        return found

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
