"""Recorded exchanges (the format of ``../shared/corpus/recorded-exchanges.jsonl``): reading them,
and where each endpoint lives, for the tools that replay them (accuracy, bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from chargeback.errors import UserError

__all__ = ["ENDPOINT_PATHS", "read_records"]

#: A record's ``endpoint`` -> the API path after ``/openai/v1/`` or ``/deployments/{d}/``.
ENDPOINT_PATHS = {
    "chat": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a file, one JSON object a line. A file that is not that raises
    `UserError` saying why."""
    if path.is_dir():
        raise UserError(f"{path} is a folder: give a file of recorded exchanges, one a line")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UserError(f"{path} line {number}: not a JSON object") from None
        if not isinstance(record, dict):
            raise UserError(f"{path} line {number}: not a JSON object")
        records.append(record)
    return records
