"""Keys and credentials are masked on arrival, so no later stage ever holds one."""

from __future__ import annotations

__all__ = ["mask_key"]


def mask_key(value: str | None) -> str | None:
    """First 8 characters, then ``XXXX`` (CONTRACTS §2): enough to tell callers apart."""
    if not value:
        return None
    return value[:8] + "XXXX"
