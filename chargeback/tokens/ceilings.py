"""The most tokens one call can plausibly carry, per model: the usage rules' ceiling.

A model reads at most its context window and writes at most its output limit per invocation, so
one call's prompt + completion stays under their sum (generous by the output limit where the
documented window already includes the output). Each row cites the page it was read from:

- Azure OpenAI models: "Foundry Models sold directly by Azure", Azure OpenAI tab,
  learn.microsoft.com/azure/foundry/foundry-models/concepts/models-sold-directly-by-azure (its
  source: MicrosoftDocs/azure-ai-docs, articles/foundry/openai/includes/
  models-azure-direct-openai.md, ms.date 06/11/2026), columns "Context Window" and "Max Output
  Tokens", or "Max request (tokens)" Input and Output for the o-series, GPT-4o and audio
  models. The anchor in each row names the section.
- Embeddings: "all embedding models enforce a maximum of 300,000 tokens summed across all inputs
  in a single request" (learn.microsoft.com/azure/foundry/reference/rest/
  embeddings-create-embedding); they write no output.

Three widenings, each for a call that legitimately holds more than one invocation's worth:

- ``n`` (chat) and ``best_of`` (completions) generate and bill that many completions: the output
  limit counts that many times (up to 128, the API's maximum ``n``).
- A Responses API call can run several model turns on the service's side (built-in tools such
  as code interpreter, file and web search, MCP) and reports their sum: the ceiling is
  `RESPONSES_TURNS` times the model's. The recordings show why: a code-interpreter call on
  gpt-4o-mini reported 151,629 input tokens, 1.05 times its window (openai/openai-dotnet
  tests/SessionRecords/ResponsesToolTests/CodeInterpreterToolWithUploadedFileIdsAsync.json).
  8 is a judgement with that one measurement behind it, stated here so it can be changed.
- A model the table does not know gets `GLOBAL_CEILING`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = ["CEILINGS", "GLOBAL_CEILING", "RESPONSES_TURNS", "Ceiling", "ceiling_for"]

_AOAI = (
    "https://learn.microsoft.com/azure/foundry/foundry-models/concepts/"
    "models-sold-directly-by-azure?pivots=azure-openai"
)
_EMBEDDINGS = "https://learn.microsoft.com/azure/foundry/reference/rest/embeddings-create-embedding"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """One model family's documented limits, in tokens."""

    family: str
    context: int
    output: int
    source: str

    @property
    def tokens(self) -> int:
        return self.context + self.output


def _rows(families: str, context: int, output: int, source: str) -> tuple[Ceiling, ...]:
    return tuple(Ceiling(name, context, output, source) for name in families.split())


CEILINGS: Final[tuple[Ceiling, ...]] = (
    *_rows("gpt-chat-latest", 128_000, 16_384, f"{_AOAI}#gpt-chat-latest"),
    *_rows("gpt-5.5", 1_050_000, 128_000, f"{_AOAI}#gpt-55"),
    *_rows("gpt-5.4 gpt-5.4-pro", 1_050_000, 128_000, f"{_AOAI}#gpt-54"),
    *_rows("gpt-5.4-mini gpt-5.4-nano", 400_000, 128_000, f"{_AOAI}#gpt-54"),
    *_rows("gpt-5.3-codex", 400_000, 128_000, f"{_AOAI}#gpt-53"),
    *_rows("gpt-5.3-chat", 128_000, 16_384, f"{_AOAI}#gpt-53"),
    *_rows("gpt-5.2 gpt-5.2-codex", 400_000, 128_000, f"{_AOAI}#gpt-52"),
    *_rows("gpt-5.2-chat", 128_000, 16_384, f"{_AOAI}#gpt-52"),
    *_rows(
        "gpt-5.1 gpt-5.1-codex gpt-5.1-codex-mini gpt-5.1-codex-max",
        400_000,
        128_000,
        f"{_AOAI}#gpt-51",
    ),
    *_rows("gpt-5.1-chat", 128_000, 16_384, f"{_AOAI}#gpt-51"),
    *_rows("gpt-5 gpt-5-mini gpt-5-nano gpt-5-codex gpt-5-pro", 400_000, 128_000, f"{_AOAI}#gpt-5"),
    *_rows("gpt-5-chat", 128_000, 16_384, f"{_AOAI}#gpt-5"),
    *_rows("gpt-oss-120b gpt-oss-20b", 131_072, 131_072, f"{_AOAI}#gpt-oss"),
    *_rows("gpt-4.1 gpt-4.1-mini gpt-4.1-nano", 1_047_576, 32_768, f"{_AOAI}#gpt-41-series"),
    *_rows("computer-use-preview", 8_192, 1_024, f"{_AOAI}#computer-use-preview"),
    *_rows("codex-mini o3-pro o4-mini o3 o3-mini o1", 200_000, 100_000, f"{_AOAI}#o-series-models"),
    *_rows("o1-preview", 128_000, 32_768, f"{_AOAI}#o-series-models"),
    *_rows("o1-mini", 128_000, 65_536, f"{_AOAI}#o-series-models"),
    *_rows("gpt-4o gpt-4o-mini", 128_000, 16_384, f"{_AOAI}#gpt-4-and-gpt-4-turbo-models"),
    *_rows("gpt-4 gpt-4-turbo", 128_000, 4_096, f"{_AOAI}#gpt-4-and-gpt-4-turbo-models"),
    *_rows(
        "gpt-4o-audio-preview gpt-4o-mini-audio-preview gpt-audio-1.5",
        128_000,
        16_384,
        f"{_AOAI}#audio-models",
    ),
    *_rows(
        "text-embedding-3-large text-embedding-3-small text-embedding-ada-002",
        300_000,
        0,
        _EMBEDDINGS,
    ),
)

#: For a model the table does not know: the largest input plus output of any model Azure sells
#: directly, Llama-4-Maverick-17B-128E-Instruct-FP8 (input 1M tokens, output 1M tokens; "Meta
#: models sold by Azure", the same page's "other model collections" tab), above every row here.
GLOBAL_CEILING: Final = 2_000_000
#: How many invocations' worth a Responses API call may report (module docstring).
RESPONSES_TURNS: Final = 8
#: The most completions one request may ask for (``n``, ``best_of``): the API's maximum ``n``.
MAX_CHOICES: Final = 128

_BY_FAMILY: Final = {row.family: row for row in CEILINGS}
# What may follow a family in a dated model name: nothing, or a version date (as in pricing).
_VERSION_SUFFIX: Final = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{4})?", re.ASCII)


def ceiling_for(model: str | None, operation: str | None = None, choices: int = 1) -> int:
    """The most prompt + completion tokens one call to ``model`` can plausibly report."""
    row = _row(model)
    if row is None:
        return GLOBAL_CEILING * (RESPONSES_TURNS if operation == "responses" else 1)
    choices = min(max(choices, 1), MAX_CHOICES)
    single = row.context + row.output * choices
    return single * (RESPONSES_TURNS if operation == "responses" else 1)


@lru_cache(maxsize=1024)
def _row(model: str | None) -> Ceiling | None:
    """The table's row for a (dated, provider-prefixed) model name: the longest family the name
    starts with, followed by nothing or a version date."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    best: Ceiling | None = None
    for family, row in _BY_FAMILY.items():
        if (
            name.startswith(family)
            and (best is None or len(family) > len(best.family))
            and _VERSION_SUFFIX.fullmatch(name, len(family))
        ):
            best = row
    return best
