"""Stage 4: tokens. Reported usage wins (`chargeback.tokens.usage`); otherwise the call is
estimated from its bodies with the model's own encoding and its family's rules
(`chargeback.tokens.rules`): the request side (`request`) and the completion side (`completion`).

What cannot be seen offline is flagged in ``notes`` (the event's ``Estimate`` dimension), never
guessed silently; `chargeback.tokens.rules` lists the flags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.completion import CompletionCounter
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
) -> TokenCounts:
    """Estimate prompt and completion tokens from the bodies, with the model's encoding; texts
    already in ``cache`` are not tokenized again (the counts are the same)."""
    request = RequestCounter(model, image_url_policy, cache)
    reply = CompletionCounter(model, cache)
    prompt = request.count(exchange)
    completion = reply.count(exchange)
    # What the bodies stage could not read (an unreadable request, a broken stream chunk) makes
    # the estimate weaker: it says so on the event.
    notes = [*exchange.notes, *request.notes, *reply.notes]
    if exchange.request is None:
        notes.append("request-missing")
    if exchange.request_truncated or exchange.response_truncated:
        notes.append("body-truncated")
    if reply.rule.reasoning and exchange.operation != "embeddings":
        notes.append("reasoning-unseen")  # hidden reasoning tokens are billed but never shown
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion,
        reasoning=reply.reasoning,
        source="estimated",
        notes=tuple(dict.fromkeys(notes)),
    )
