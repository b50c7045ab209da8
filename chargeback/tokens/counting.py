"""What the request side and the completion side of an estimate share: one model's encoding
and rules, and the notes on what the bodies could not show."""

from __future__ import annotations

from typing import Any

from chargeback.tokens.encodings import count_text, encoding_for_model
from chargeback.tokens.rules import chat_rule

__all__ = ["Counting"]


class Counting:
    """Counts text with one model's encoding and rules; collects the notes."""

    def __init__(self, model: str) -> None:
        self.encoding = encoding_for_model(model)
        self.rule = chat_rule(model)
        self.notes: list[str] = []

    def text(self, value: Any) -> int:
        return count_text(value, self.encoding) if isinstance(value, str) and value else 0
