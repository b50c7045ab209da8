"""Readers that tolerate wrong types: a body's field is used only when it has the type the API
documents, and is otherwise read as empty (never an exception on hostile input)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_list", "as_str"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""
