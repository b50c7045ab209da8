"""What one measured call says: its category, what the API reported, what the estimate said,
and why a side is not estimable from the bodies (a row of its own, never a category's)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "APPROXIMATE",
    "CATEGORIES",
    "COMPLETION_INVISIBLE",
    "DEVELOPMENT_SOURCES",
    "EDITED",
    "IMPLAUSIBLE",
    "NOT_API",
    "NOT_ESTIMABLE",
    "OTHER_FAMILIES",
    "PROMPT_INVISIBLE",
    "REASONS",
    "RESPONSES_SETTLED",
    "RESPONSE_STATUSES",
    "SERVICE_CHANGED",
    "Measurement",
    "Summary",
    "every_error",
]

#: Table rows, in order. "other families" holds calls of models with no OpenAI tokenizer,
#: estimated with a stated approximation (``tokenizer-approximate``).
CATEGORIES = (
    "text chat",
    "chat with tools/schema",
    "images",
    "files and audio",
    "Responses API",
    "legacy completions",
    "embeddings",
    "other families",
)
OTHER_FAMILIES = "other families"
APPROXIMATE = "tokenizer-approximate"
#: A call the pipeline did not emit (dead-lettered): nothing to compare.
NOT_ESTIMABLE = "not estimated"

#: The sources of the recordings the estimation rules were fitted on (the corpus README:
#: ``recorded-exchanges.jsonl``, copied in tests/data). Every other source is held out.
DEVELOPMENT_SOURCES = frozenset(
    {"pydantic+pydantic-ai", "open-telemetry+opentelemetry-python-contrib"}
)

#: Estimate notes (the event's ``Estimate`` dimension) that say a side of a call holds tokens the
#: bodies do not show. Such a side is not "visible": it gets its own row, never a category's.
PROMPT_INVISIBLE: dict[str, str] = {
    "context-invisible": "context kept by the service (previous_response_id, stored prompt...)",
    "encrypted-reasoning": "encrypted reasoning items in the input",
    "server-tools": "built-in tools: definitions and results added server-side",
    "file-input": "file or audio input",
    "image-size-unknown": "image by URL or file id: size unknown",
    "image-detail-auto": "detail auto: the model picks low or high by size (threshold unknown)",
    "completion-on-chat-model": "a chat model on /completions: the prompt's chat wrapping unseen",
    "reasoning-mode": "a reasoning mode (pro) adds work the bodies never show",
}
COMPLETION_INVISIBLE: dict[str, str] = {
    "reasoning-remainder-unseen": "hidden reasoning beyond reasoning_tokens (steps of 64)",
    "server-tool-output": "built-in tool calls in the output",
    "compaction-output": "the service compacted the conversation (encrypted output item)",
    "reasoning-mode": "a reasoning mode (pro) adds work the bodies never show",
}
#: Usages that cannot be the API's (checked by this command only): zero tokens for a call that
#: answered, or a Responses body whose ``status`` is none the API writes (hand-written test
#: fixtures: records 345-347 and 448 say "complete", report 10 in / 1 out for any text, and
#: carry a top-level total_tokens of 15 that contradicts their usage's 11).
IMPLAUSIBLE = "usage-zero"
_IMPLAUSIBLE_TEXT = "the usage says 0 tokens for a call that answered"
NOT_API = "usage-not-api"
_NOT_API_TEXT = "the response body is not one the API writes (Responses status)"
#: Recordings whose request body is not what was sent: openai-dotnet's test proxy stores every
#: image of its ImagesTests and ImageEditsTests sessions as the same 1×1 PNG (22 records), while
#: the API billed 25,515 to 36,849 input tokens for them: images of several tiles. The estimate
#: is right for the body recorded; the body is not the call's.
EDITED = "recording-edited"
_EDITED_TEXT = "the recording replaced the request's images (a 1x1 placeholder PNG)"
#: Responses calls made before this date (Unix time, 2025-04-01): in the API's first weeks the
#: service billed 18 tokens more per call and about 216 more with a function tool than in
#: every later recording of the same calls (development records 399, 418, 433, 434, 436 of
#: 2025-03-27; held out, pydantic/logfire of 2025-03-10/12/28 and alexrudall/ruby-openai of
#: 2025-03-14: all -18 or -216; every Responses recording from 2025-04-07 on fits the rules).
#: The service changed, not the rule: such a call's prompt side is set apart.
SERVICE_CHANGED = "service-changed"
_SERVICE_CHANGED_TEXT = "a Responses call of the API's first weeks (before 2025-04-01)"
RESPONSES_SETTLED = 1743465600
#: Source: OpenAI API reference, the Response object's ``status``.
RESPONSE_STATUSES = frozenset(
    {"completed", "failed", "in_progress", "cancelled", "queued", "incomplete"}
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured record: what the API reported and what the estimate said."""

    category: str
    model: str
    reported_prompt: int
    reported_completion: int  # reasoning tokens already taken off
    estimated_prompt: int | None = None  # None: not estimable
    estimated_completion: int | None = None
    notes: str = ""
    implausible: bool = False
    not_api: bool = False
    edited: bool = False  # the recorded request is not the one sent (prompt side)
    early: bool = False  # a Responses call of the API's first weeks (prompt side)
    source: str = ""  # the recording's project (``src``)
    file: str = ""  # the file it was read from

    def reason(self, side: str) -> str | None:
        """Why this side is not estimable from the bodies, or None when its content is visible."""
        if self.implausible:
            return IMPLAUSIBLE
        if self.not_api:
            return NOT_API
        if self.edited and side == "prompt":
            return EDITED
        table = PROMPT_INVISIBLE if side == "prompt" else COMPLETION_INVISIBLE
        found = next((note for note in self.notes.split(",") if note in table), None)
        if found is None and self.early and side == "prompt":
            return SERVICE_CHANGED
        return found

    @property
    def prompt_error(self) -> int | None:
        if self.estimated_prompt is None:
            return None
        return self.estimated_prompt - self.reported_prompt

    @property
    def completion_error(self) -> int | None:
        if self.estimated_completion is None:
            return None
        return self.estimated_completion - self.reported_completion


REASONS = {
    **PROMPT_INVISIBLE,
    **COMPLETION_INVISIBLE,
    IMPLAUSIBLE: _IMPLAUSIBLE_TEXT,
    NOT_API: _NOT_API_TEXT,
    EDITED: _EDITED_TEXT,
    SERVICE_CHANGED: _SERVICE_CHANGED_TEXT,
}


@dataclass(frozen=True, slots=True)
class Summary:
    """Errors of one side (prompt or completion) of one category."""

    count: int
    exact: float
    within1: float
    within2: float
    mean_abs: float
    worst: int

    @classmethod
    def of(cls, errors: Sequence[int]) -> Summary:
        if not errors:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0)
        size = len(errors)
        return cls(
            count=size,
            exact=sum(1 for e in errors if e == 0) / size,
            within1=sum(1 for e in errors if abs(e) <= 1) / size,
            within2=sum(1 for e in errors if abs(e) <= 2) / size,
            mean_abs=sum(abs(e) for e in errors) / size,
            worst=max(errors, key=abs),
        )


def every_error(rows: Iterable[Measurement], side: str) -> list[int]:
    """Errors of one side over every row that has an estimate, shown by the bodies or not."""
    found = (row.prompt_error if side == "prompt" else row.completion_error for row in rows)
    return [error for error in found if error is not None]
