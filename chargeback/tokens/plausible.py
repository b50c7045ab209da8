"""The usage rules: counts that make sense, or are not billed as sent. One function,
`plausible_counts`, for every source of counts (the API's usage, the v1 policy's copy of it, the
usage-only shape's counts, API Management's LLM log, and the estimate), applied once the source's
reader has made its counts whole numbers >= 0:

1. total = prompt + completion; a total that differs is recomputed and flagged
   ``total-recomputed``. (Gemini's OpenAI-compatible API counts its thinking tokens in the total
   only; recorded in tests/data/recorded-exchanges.jsonl.)
2. cached <= prompt; more is clamped to the prompt and flagged ``cached-clamped`` (the price
   then bills the whole prompt at the cached rate, the reading closest to what was reported).
3. reasoning <= completion; more is clamped and flagged ``reasoning-clamped`` (reasoning is part
   of completion and is not priced on its own).
4. prompt + completion <= the model's ceiling (`chargeback.tokens.ceilings`); above it the call
   raises `ImplausibleUsage`: dead-lettered as ``implausible-usage``, kept, never priced. A count
   that large means the source is broken or the table does not know the model; either needs a
   person, and the dead letter replays once the table does.

The flags go to ``TokenCounts.adjusted``, the event's ``UsageAdjusted`` dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chargeback.errors import ImplausibleUsage
from chargeback.tokens.ceilings import ceiling_for
from chargeback.tokens.usage import TokenCounts

__all__ = ["choices_of", "plausible_counts"]

#: The ceiling of one completion per (model, operation): it runs once per call.
_SINGLE: dict[tuple[str | None, str | None], int] = {}


def plausible_counts(
    counts: TokenCounts,
    model: str | None,
    operation: str | None = None,
    request: Mapping[str, Any] | None = None,
) -> TokenCounts:
    """``counts`` as the rules of this module's docstring allow them. ``operation`` (the
    operation of CONTRACTS §2, e.g. ``responses``) and ``request`` (its ``n`` or ``best_of``)
    widen the ceiling as `ceiling_for` says. Raises `ImplausibleUsage`."""
    prompt, completion, total, cached, reasoning = counts[:5]
    key = (model, operation)
    single = _SINGLE.get(key)
    if single is None:
        single = ceiling_for(model, operation)
        if model is None or len(model) <= 256:  # bounded: a hostile name is not kept
            if len(_SINGLE) >= 4096:
                _SINGLE.clear()
            _SINGLE[key] = single
    if (
        total == prompt + completion <= single
        and 0 <= cached <= prompt
        and 0 <= reasoning <= completion
        and prompt >= 0
        and completion >= 0
    ):
        return counts  # the usual call: nothing to correct, far under its ceiling
    if prompt < 0 or completion < 0 or cached < 0 or reasoning < 0:
        raise ImplausibleUsage("a negative token count")  # the readers never make one
    ceiling = ceiling_for(model, operation, choices_of(request))
    if prompt + completion > ceiling:
        raise ImplausibleUsage(
            f"{prompt + completion} tokens in one call, above the ceiling of {ceiling} for"
            f" {'model ' + repr(model) if model else 'an unknown model'} ({operation or 'any'}"
            " operation; chargeback/tokens/ceilings.py)"
        )
    if total == prompt + completion and cached <= prompt and reasoning <= completion:
        return counts
    flags = list(counts.adjusted)
    if total != prompt + completion:
        flags.append("total-recomputed")
    if cached > prompt:
        flags.append("cached-clamped")
    if reasoning > completion:
        flags.append("reasoning-clamped")
    return counts._replace(
        total=prompt + completion,
        cached=min(cached, prompt),
        reasoning=min(reasoning, completion),
        adjusted=tuple(dict.fromkeys(flags)),
    )


def choices_of(request: Mapping[str, Any] | None) -> int:
    """How many completions a request asked for: ``best_of`` generates (and bills) that many,
    else ``n``; 1 when it says neither."""
    for name in ("best_of", "n"):
        value = (request or {}).get(name)
        if type(value) is int and value > 1:
            return value
    return 1
