"""``python -m chargeback accuracy FILE``: how close the estimate comes to what the API reported.

Reads recorded exchanges (the format of ``../shared/corpus/recorded-exchanges.jsonl``). Every
record with status 200 and a reported usage is sent through the production path — wrapped as a
v1 gateway message (CONTRACTS §1a) with the usage stripped from its response body, run through
`Processor` into a `MemorySink` — and the event's counts are compared with the reported usage.

Stripping: a JSON body loses its ``usage`` key; a chat stream loses its usage chunk (and any
non-null ``usage`` on other chunks); a Responses stream loses the ``usage`` of its final
``response.*`` event. Everything else is kept as it was.

Reasoning models bill hidden reasoning tokens as completion tokens; no estimate can see them, so
the completion side is compared with ``completion_tokens - reasoning_tokens`` (the table says so).
Records whose model has no known tokenizer (Mistral, Llama, Gemini, ...) go to their own row,
"not estimable", and are not counted in the fractions of the last line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargeback.emit import ChargebackEvent, MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import Settings, load_settings
from chargeback.tokens import usage_from_api
from chargeback.tools.progress import Progress
from chargeback.tools.recordings import ENDPOINT_PATHS, read_records

__all__ = ["Measurement", "category", "main", "measure", "report", "strip_usage"]

#: Table rows, in order. "not estimable" holds records whose model has no known tokenizer.
CATEGORIES = (
    "text chat",
    "chat with tools",
    "images",
    "files and audio",
    "embeddings",
    "completions",
    "Responses API",
)
NOT_ESTIMABLE = "not estimable"

#: Estimate notes (the event's ``Estimate`` dimension) that say a side of a call holds tokens the
#: bodies do not show. Such a side is not "visible": it gets its own row, never a category's.
PROMPT_INVISIBLE: dict[str, str] = {
    "context-invisible": "earlier turns kept by the service (previous_response_id, ...)",
    "encrypted-reasoning": "encrypted reasoning items in the input",
    "server-tools": "built-in tools: definitions and results added server-side",
    "file-input": "file or audio input",
    "image-size-unknown": "image by URL or file id: size unknown",
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

    def reason(self, side: str) -> str | None:
        """Why this side is not estimable from the bodies, or None when its content is visible."""
        if self.implausible:
            return IMPLAUSIBLE
        if self.not_api:
            return NOT_API
        table = PROMPT_INVISIBLE if side == "prompt" else COMPLETION_INVISIBLE
        return next((note for note in self.notes.split(",") if note in table), None)

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


# --- Which category a record belongs to -----------------------------------------------------


_IMAGE_PARTS = frozenset({"image_url", "input_image"})
_FILE_PARTS = frozenset({"input_audio", "file", "input_file"})


def _has_part(value: Any, types: frozenset[str]) -> bool:
    """A content part of one of these types anywhere in a request's messages or input items."""
    if isinstance(value, dict):
        if value.get("type") in types:
            return True
        return any(_has_part(item, types) for item in value.values())
    if isinstance(value, list):
        return any(_has_part(item, types) for item in value)
    return False


def category(record: dict[str, Any]) -> str:
    """The table row of a record, from its request."""
    request = record.get("request") or {}
    endpoint = record.get("endpoint")
    if endpoint == "embeddings":
        return "embeddings"
    if endpoint == "completions":
        return "completions"
    if endpoint == "responses":
        return "Responses API"
    if _has_part(request.get("messages"), _FILE_PARTS):
        return "files and audio"
    if _has_part(request.get("messages"), _IMAGE_PARTS):
        return "images"
    if request.get("tools") or request.get("functions"):
        return "chat with tools"
    return "text chat"


# --- Stripping the usage --------------------------------------------------------------------


def strip_usage(response_text: str, stream: bool) -> str:
    """The response body as if the API had reported no usage."""
    if not stream:
        body = json.loads(response_text)
        if isinstance(body, dict):
            body.pop("usage", None)
        return json.dumps(body)
    return "".join(_strip_line(line) for line in response_text.splitlines(keepends=True))


def _strip_line(line: str) -> str:
    if not line.startswith("data:"):
        return line
    payload = line[5:].strip()
    try:
        chunk = json.loads(payload)
    except ValueError:
        return line  # "[DONE]" and anything else not JSON stays as it was
    if not isinstance(chunk, dict):
        return line
    if isinstance(chunk.get("usage"), dict):
        if not chunk.get("choices"):
            return ""  # the usage chunk itself
        chunk["usage"] = None
    response = chunk.get("response")
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        response.pop("usage")
    ending = line[len(line.rstrip("\r\n")) :]
    return "data: " + json.dumps(chunk) + ending


def gateway_message(record: dict[str, Any], request_id: str) -> bytes:
    """A record as the APIM policy sends it (CONTRACTS §1a), usage stripped."""
    fields = {
        "version": 1,
        "requestId": request_id,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "method": "POST",
        "url": f"https://gw.example.com/openai/v1/{ENDPOINT_PATHS[record['endpoint']]}",
        "statusCode": record["status"],
        "responseContentType": "text/event-stream" if record["stream"] else "application/json",
        "requestBody": json.dumps(record["request"]),
        "responseBody": strip_usage(record["response_text"], record["stream"]),
    }
    return json.dumps(fields).encode()


# --- Measuring ------------------------------------------------------------------------------


def measurable(record: dict[str, Any]) -> bool:
    """Only answered calls with a reported usage have something to compare with."""
    return (
        record.get("status") == 200
        and bool(record.get("usage"))
        and record.get("endpoint") in ENDPOINT_PATHS
    )


def measure(
    records: Iterable[dict[str, Any]],
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> list[Measurement]:
    """Run every measurable record through the production path and compare; ``progress``
    advances a record at a time."""
    chosen = [record for record in records if measurable(record)]
    sink = MemorySink()
    processor = Processor(settings or load_settings(), sink, MemoryDeadLetters())
    numbered: Iterable[tuple[int, dict[str, Any]]] = enumerate(chosen)
    if progress is not None:
        progress.expect(len(chosen))
        numbered = progress.each(numbered)
    processor.process_batch(
        RawMessage(gateway_message(record, f"rec-{number}"), sequence_number=number)
        for number, record in numbered
    )
    events = {event.dimensions["RequestId"]: event for event in sink.events}
    return [
        _measurement(record, events.get(f"rec-{number}")) for number, record in enumerate(chosen)
    ]


def _measurement(record: dict[str, Any], event: ChargebackEvent | None) -> Measurement:
    reported = usage_from_api(record["usage"])
    assert reported is not None  # measurable() kept only records with a usage
    model = record.get("model") or str(record["request"].get("model"))
    if event is None:
        return Measurement(
            NOT_ESTIMABLE, model, reported.prompt, reported.completion - reported.reasoning
        )
    completion = int(event.measurements["CompletionTokens"])
    # Reasoning the body shows (gpt-oss) is estimated too: compare whole completions then.
    shown = int(event.measurements.get("ReasoningTokens", 0)) > 0
    return Measurement(
        category(record),
        model,
        reported.prompt,
        reported.completion - (0 if shown else reported.reasoning),
        estimated_prompt=int(event.measurements["PromptTokens"]),
        estimated_completion=completion,
        notes=event.dimensions.get("Estimate") or "",
        implausible=reported.total == 0 and completion > 0,
        not_api=_status(record) not in RESPONSE_STATUSES | {None},
    )


def _status(record: dict[str, Any]) -> Any:
    """The ``status`` a Responses body gives (its last ``response`` object when streamed)."""
    if record.get("endpoint") != "responses":
        return None
    if not record.get("stream"):
        try:
            body = json.loads(record["response_text"])
        except ValueError:
            return None
        return body.get("status") if isinstance(body, dict) else None
    status = None
    for line in record["response_text"].splitlines():
        if not line.startswith("data:"):
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        response = chunk.get("response") if isinstance(chunk, dict) else None
        if isinstance(response, dict) and "status" in response:
            status = response["status"]
    return status


# --- The table ------------------------------------------------------------------------------


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


_HEADER = (
    f"{'category':<22} {'side':<11} {'n':>4} {'exact':>6} {'±1':>6} {'±2':>6}"
    f" {'mean|err|':>9} {'worst':>7}"
)


def _row(name: str, side: str, summary: Summary) -> str:
    return (
        f"{name:<22} {side:<11} {summary.count:>4} {summary.exact:>6.1%} {summary.within1:>6.1%}"
        f" {summary.within2:>6.1%} {summary.mean_abs:>9.2f} {summary.worst:>+7d}"
    )


def _errors(rows: Iterable[Measurement], side: str, reason: str | None = None) -> list[int]:
    """Errors of one side over the rows whose side is visible (reason None) or not estimable
    for that reason."""
    found = (
        row.prompt_error if side == "prompt" else row.completion_error
        for row in rows
        if row.reason(side) == reason
    )
    return [error for error in found if error is not None]


def _fraction(rows: Sequence[Measurement], side: str, limit: int, every: bool = False) -> float:
    """Share of errors within ``limit``: over the visible sides, or over ``every`` side."""
    if every:
        found = (row.prompt_error if side == "prompt" else row.completion_error for row in rows)
        errors = [error for error in found if error is not None]
    else:
        errors = _errors(rows, side)
    return sum(1 for e in errors if abs(e) <= limit) / len(errors) if errors else 0.0


_REASONS = {
    **PROMPT_INVISIBLE,
    **COMPLETION_INVISIBLE,
    IMPLAUSIBLE: _IMPLAUSIBLE_TEXT,
    NOT_API: _NOT_API_TEXT,
}


def report(measurements: Sequence[Measurement]) -> Iterator[str]:
    """The table, then the last line of CONTRACTS §3."""
    yield "Estimated tokens against the usage the API reported (error = estimate - reported)."
    yield "Completion side: reported completion minus reasoning tokens, which no body shows."
    yield "Categories count only sides whose content the bodies show; the rest are listed below."
    yield _HEADER
    estimated = [m for m in measurements if m.category != NOT_ESTIMABLE]
    for name in CATEGORIES:
        rows = [m for m in estimated if m.category == name]
        if rows:
            yield _row(name, "prompt", Summary.of(_errors(rows, "prompt")))
            yield _row("", "completion", Summary.of(_errors(rows, "completion")))
    yield _row("all visible", "prompt", Summary.of(_errors(estimated, "prompt")))
    yield _row("", "completion", Summary.of(_errors(estimated, "completion")))
    yield "not estimable from the bodies (a call counts once per side, under its first reason):"
    excluded: dict[str, int] = {}
    for reason, text in _REASONS.items():
        for side in ("prompt", "completion"):
            errors = _errors(estimated, side, reason)
            if errors:
                excluded[f"{side}:{reason}"] = len(errors)
                yield _row(f"  {reason}", side, Summary.of(errors)) + f"  {text}"
    skipped = len(measurements) - len(estimated)
    yield f"{NOT_ESTIMABLE:<22} (no known tokenizer for the model) {skipped:>4}"
    visible = {side: len(_errors(estimated, side)) for side in ("prompt", "completion")}
    yield (
        f"accuracy: measured={len(measurements)} estimated={len(estimated)}"
        f" not_estimable={skipped}"
        f" prompt_exact={_fraction(estimated, 'prompt', 0):.4f}"
        f" prompt_within2={_fraction(estimated, 'prompt', 2):.4f}"
        f" completion_exact={_fraction(estimated, 'completion', 0):.4f}"
        f" completion_within1={_fraction(estimated, 'completion', 1):.4f}"
        f" prompt_visible={visible['prompt']} completion_visible={visible['completion']}"
        # the same two fractions over every estimated call, what the bodies show or not
        f" prompt_exact_all={_fraction(estimated, 'prompt', 0, every=True):.4f}"
        f" completion_within1_all={_fraction(estimated, 'completion', 1, every=True):.4f}"
        + "".join(f" excluded[{key}]={count}" for key, count in excluded.items())
    )


def add_parser(commands: Any) -> None:
    accuracy = commands.add_parser(
        "accuracy",
        help="estimate recorded calls, compare with the usage the API reported",
        description="Strip the reported usage from recorded exchanges, run them through the "
        "Function's code path and print the estimate's error by category.",
    )
    accuracy.add_argument("file", help="recorded exchanges, one JSON object a line")
    accuracy.set_defaults(run=lambda args: main(args.file))


def main(path: str | Path, out: Any = None) -> int:
    """Measure the records of a file and print the table."""
    logging.getLogger("chargeback").addHandler(logging.NullHandler())  # outcomes are in the table
    stream = out or sys.stdout
    records = read_records(Path(path))
    with Progress("accuracy", unit="record") as progress:
        measurements = measure(records, progress=progress)
    for line in report(measurements):
        stream.write(line + "\n")
    return 0
