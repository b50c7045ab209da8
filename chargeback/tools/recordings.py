"""Recorded exchanges (the format of ``../shared/corpus/recorded-exchanges.jsonl``): reading them,
and where each endpoint lives, for the tools that replay them (accuracy, bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

__all__ = ["ENDPOINT_PATHS", "read_records"]

#: A record's ``endpoint`` -> the API path after ``/openai/v1/`` or ``/deployments/{d}/``.
ENDPOINT_PATHS = {
    "chat": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a file, one JSON object a line."""
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines if line.strip()]
