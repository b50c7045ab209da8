"""What the request side and the completion side of an estimate share: one model's tokenizer
and rules, and the notes on what the bodies could not show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.encodings import count_text, encoding_for_model
from chargeback.tokens.rules import chat_rule

if TYPE_CHECKING:
    from chargeback.tokens.cache import Encoding
    from chargeback.tokens.families import Tokenizer

__all__ = ["Counting"]


class Counting:
    """Counts text with one model's tokenizer (``tokenizer``: `chargeback.tokens.families`; else
    the model's OpenAI encoding) and rules, through ``cache`` when given (texts already counted
    are not tokenized again); collects the notes."""

    def __init__(
        self,
        model: str,
        cache: TokenCountCache | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.encoding: Encoding = (
            encoding_for_model(model) if tokenizer is None else tokenizer.encoding
        )
        self.rule = chat_rule(model)
        self.notes: list[str] = []
        self.cache = cache

    def text(self, value: Any) -> int:
        if type(value) is not str:
            return count_text(value, self.encoding) if isinstance(value, str) and value else 0
        if not value:
            return 0
        if self.cache is not None:
            return self.cache.count(value, self.encoding)
        return count_text(value, self.encoding)
