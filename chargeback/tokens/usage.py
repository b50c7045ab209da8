"""Token counts, and reading them from a ``usage`` object as the API wrote it (chat, completions,
embeddings and Responses forms).

A count is a JSON integer >= 0 (never a bool, a float or a string). A usage object whose prompt
or completion count is not one holds no readable counts (`usage_from_api` gives None) and the
call is estimated from its bodies, flagged ``usage-unreadable``. A cached or reasoning count that
is not one is taken as 0 and flagged (``cached-unreadable``, ``reasoning-unreadable``). How large
a count may be is the usage rules' question (`chargeback.tokens.plausible`), not the reader's."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

__all__ = ["TokenCounts", "TokenSource", "usage_from_api"]

TokenSource = Literal["usage", "estimated", "event", "gateway"]


class TokenCounts(NamedTuple):
    """Counts of one call. A named tuple: built once per message, at a third of a frozen
    dataclass's cost."""

    prompt: int
    completion: int
    total: int
    cached: int = 0
    reasoning: int = 0
    source: TokenSource = "usage"
    #: Why an estimate may be off (flags only, never content), e.g. "image-url-size-unknown".
    notes: tuple[str, ...] = ()
    #: What the usage rules changed in counts as reported (the event's ``UsageAdjusted``), e.g.
    #: "total-recomputed" (`chargeback.tokens.plausible`).
    adjusted: tuple[str, ...] = ()


def _count(value: Any) -> int | None:
    if type(value) is not int or value < 0:  # bool is an int subclass, not a count
        return None
    return value


def _detail(usage: dict[str, Any], key: str, name: str) -> int:
    """The detail count, 0 when the API left it out, -1 when it is there but not a count."""
    details = usage.get(key)
    if details is None:
        return 0
    if not isinstance(details, dict):
        return -1
    value = details.get(name)
    if value is None:
        return 0
    count = _count(value)
    return -1 if count is None else count


def usage_from_api(usage: dict[str, Any] | None) -> TokenCounts | None:
    """Counts from a ``usage`` object as the API wrote it (chat/completions/embeddings form or
    Responses form). None when it holds no readable counts."""
    if not usage:
        return None
    return _usual_usage(usage) or _read_usage(usage)


def _read_usage(usage: dict[str, Any]) -> TokenCounts | None:
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        prompt, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
        cached = _detail(usage, "input_tokens_details", "cached_tokens")
        reasoning = _detail(usage, "output_tokens_details", "reasoning_tokens")
    else:
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens", 0))
        cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
        reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    if prompt is None or completion is None:
        return None
    total = _count(usage.get("total_tokens"))
    flags = ("cached-unreadable",) * (cached < 0) + ("reasoning-unreadable",) * (reasoning < 0)
    if total is None and usage.get("total_tokens") is not None:
        flags += ("total-recomputed",)  # there, but not a count
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion if total is None else total,
        cached=max(cached, 0),
        reasoning=max(reasoning, 0),
        source="usage",
        adjusted=flags,
    )


def _usual_usage(usage: dict[str, Any]) -> TokenCounts | None:
    """The usual chat-form usage (plain counts, details objects or none) in the fewest steps:
    what `usage_from_api` makes of it; None for anything else, which it then reads in full."""
    if "input_tokens" in usage or "output_tokens" in usage:
        return None
    get = usage.get
    prompt, completion = get("prompt_tokens"), get("completion_tokens", 0)
    total = get("total_tokens")
    if type(prompt) is not int or type(completion) is not int or type(total) is not int:
        return None
    if prompt < 0 or completion < 0 or total < 0:
        return None
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    if cached < 0 or reasoning < 0:  # flagged by the full reader
        return None
    return TokenCounts(prompt, completion, total, cached, reasoning)
