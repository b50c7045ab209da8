"""Stage 4: tokens. Reported usage wins (`chargeback.tokens.usage`); otherwise the call is
estimated from its bodies with the model's own tokenizer (`chargeback.tokens.families`: other
families' too) and its family's rules (`chargeback.tokens.rules`): the request side (`request`)
and the completion side (`completion`).

What cannot be seen offline is flagged in ``notes`` (the event's ``Estimate`` dimension), never
guessed silently; `chargeback.tokens.rules` lists the flags.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.completion import CompletionCounter
from chargeback.tokens.families import Tokenizers
from chargeback.tokens.request import RequestCounter
from chargeback.tokens.rules import ImageUrlPolicy
from chargeback.tokens.usage import TokenCounts

if TYPE_CHECKING:
    from chargeback.bodies import Exchange

__all__ = ["estimate"]


def estimate(
    exchange: Exchange,
    model: str,
    *,
    image_url_policy: ImageUrlPolicy = "high",
    cache: TokenCountCache | None = None,
    tokenizers: Tokenizers | None = None,
) -> TokenCounts:
    """Estimate prompt and completion tokens from the bodies, with the model's tokenizer
    (`chargeback.tokens.families.Tokenizers`: an OpenAI encoding, the operator's file, or
    o200k_base times the family's factor); texts already in ``cache`` are not tokenized again
    (the counts are the same). Raises `UnknownModel` only for a model the operator marked as
    not estimated."""
    tokenizer = (tokenizers or _plain_tokenizers()).for_model(model)
    request = RequestCounter(model, image_url_policy, cache, tokenizer)
    reply = CompletionCounter(model, cache, tokenizer)
    prompt = request.count(exchange)
    completion = reply.count(exchange)
    # What the bodies stage could not read (an unreadable request, a broken stream chunk) makes
    # the estimate weaker: it says so on the event.
    notes = [*exchange.notes, *request.notes, *reply.notes, *tokenizer.notes]
    if exchange.request is None:
        notes.append("request-missing")
    if exchange.request_truncated or exchange.response_truncated:
        notes.append("body-truncated")
    if reply.rule.reasoning and exchange.operation != "embeddings":
        notes.append("reasoning-unseen")  # hidden reasoning tokens are billed but never shown
    reasoning = reply.reasoning
    if tokenizer.factor != 1.0:  # another family's tokens, from o200k_base's count
        prompt, completion, reasoning = (
            round(count * tokenizer.factor) for count in (prompt, completion, reasoning)
        )
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion,
        reasoning=reasoning,
        source="estimated",
        notes=tuple(dict.fromkeys(notes)),
    )


@functools.cache
def _plain_tokenizers() -> Tokenizers:
    """The tokenizers with no operator settings (tests, tools)."""
    return Tokenizers()
