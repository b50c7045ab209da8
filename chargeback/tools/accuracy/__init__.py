"""``python -m chargeback accuracy FILE [FILE...]``: how close the estimate comes to what the API
reported, on calls the rules were fitted on and on calls they never saw.

Reads recorded exchanges (the format of ``../shared/corpus/recorded-exchanges.jsonl``). Every
record with status 200 and a reported usage is sent through the production path — wrapped as a
v1 gateway message (CONTRACTS §1a) with the usage stripped from its response body, run through
`Processor` into a `MemorySink` — and the event's counts are compared with the reported usage.

Distinct calls only: cassettes replay the same call many times, and a call counted ten times
would weigh ten times in a fraction. Two records are one call when their endpoint, request body
and reported usage are equal; the first is kept.

Cross-validated view: the rules are hand-fitted constants, so the honest held-out figure is the
rules as fitted on the development recordings (`DEVELOPMENT_SOURCES`), measured on recordings of
other projects. The command prints the category table per file and, for every source (``src``)
outside the development set, per source: a rule that holds on one project and not on the others
shows there. (Leave-one-source-out would mean refitting per run; nothing here is fitted at run
time.)

The parts: `records` (categories, distinct calls, the usage stripped, the production path),
`measurement` (one measured call and why a side is not estimable), `table` (the table and the
last line), `cross` (the cross-validated table).

Stripping: a JSON body loses its ``usage`` key; a chat stream loses its usage chunk (and any
non-null ``usage`` on other chunks); a Responses stream loses the ``usage`` of its final
``response.*`` event. Everything else is kept as it was.

Reasoning models bill hidden reasoning tokens as completion tokens; no estimate can see them, so
the completion side is compared with ``completion_tokens - reasoning_tokens`` (the table says so).
Calls of models with no OpenAI tokenizer (Mistral, Llama, Gemini, ...) are estimated with a
stated approximation (flag ``tokenizer-approximate``) and go to their own row, "other families",
outside the fractions of the last line; a call the pipeline did not emit is "not estimated".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chargeback.tools.accuracy.measurement import Measurement
from chargeback.tools.accuracy.records import (
    FILE_KEY,
    category,
    distinct,
    gateway_message,
    measurable,
    measure,
    strip_usage,
)
from chargeback.tools.accuracy.table import report
from chargeback.tools.progress import Progress
from chargeback.tools.recordings import read_records

__all__ = [
    "Measurement",
    "add_parser",
    "category",
    "distinct",
    "gateway_message",
    "main",
    "measurable",
    "measure",
    "report",
    "strip_usage",
]


def add_parser(commands: Any) -> None:
    accuracy = commands.add_parser(
        "accuracy",
        help="estimate recorded calls, compare with the usage the API reported",
        description="Strip the reported usage from recorded exchanges, run their distinct calls "
        "through the Function's code path and print the estimate's error by category, per file "
        "and per held-out source.",
    )
    accuracy.add_argument("files", nargs="+", help="recorded exchanges, one JSON object a line")
    accuracy.set_defaults(run=lambda args: main(args.files))


def main(paths: str | Path | Sequence[str | Path], out: Any = None) -> int:
    """Measure the distinct calls of one or more files and print the tables. A file that cannot
    be read raises `UserError` (one line from the command line)."""
    logging.getLogger("chargeback").addHandler(logging.NullHandler())  # outcomes are in the table
    stream = out or sys.stdout
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    records: list[dict[str, Any]] = []
    for path in files:
        for record in read_records(path):
            record[FILE_KEY] = path.name  # the per-file table
            records.append(record)
    calls = distinct(record for record in records if measurable(record))
    measurable_count = sum(1 for record in records if measurable(record))
    stream.write(
        f"{len(calls)} distinct calls ({measurable_count - len(calls)} repeats of the same call"
        f" dropped) from {', '.join(path.name for path in files)}\n"
    )
    with Progress("accuracy", unit="record") as progress:
        measurements = measure(calls, progress=progress)
    for line in report(measurements):
        stream.write(line + "\n")
    return 0
