"""Token counts, and reading them from a ``usage`` object as the API wrote it (chat, completions,
embeddings and Responses forms)."""

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


_LIMIT = 2**53  # beyond this a "count" is not a count; treat the usage as unreadable


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _LIMIT:
        return None
    return value


def _detail(usage: dict[str, Any], key: str, name: str) -> int:
    details = usage.get(key)
    if isinstance(details, dict):
        return _count(details.get(name)) or 0
    return 0


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
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion if total is None else total,
        cached=cached,
        reasoning=reasoning,
        source="usage",
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
    if not (0 <= prompt < _LIMIT and 0 <= completion < _LIMIT and 0 <= total < _LIMIT):
        return None
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    return TokenCounts(prompt, completion, total, cached, reasoning)
