"""Stage 4: tokens. Reported usage wins; otherwise count with tiktoken.

The encodings ship with the package (``chargeback/data/*.tiktoken.gz``, checked against the sha256
that tiktoken itself expects), so nothing is downloaded at run time: a Function App without
egress counts tokens too.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from chargeback.errors import UnknownModel

if TYPE_CHECKING:
    import tiktoken

    from chargeback.openai_bodies import Exchange

__all__ = [
    "TokenCounts",
    "TokenSource",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "estimate",
    "get_encoding",
    "usage_from_api",
]

TokenSource = Literal["usage", "estimated", "event"]

# --- Encodings ------------------------------------------------------------------------------

# Encoding -> (sha256 of the uncompressed .tiktoken file, split regex, special tokens).
# Source: tiktoken_ext/openai_public.py (tiktoken 0.14.0), which expects these same hashes.
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}

# Model name prefix -> encoding, most specific first. Source: tiktoken/model.py
# (MODEL_TO_ENCODING, MODEL_PREFIX_TO_ENCODING), plus Azure's spelling "gpt-35-turbo" and
# gpt-oss (o200k_harmony there: the same ranks and split as o200k_base for plain text).
MODEL_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("codex-mini", "o200k_base"),
    ("computer-use-preview", "o200k_base"),
    ("ft:gpt-4o", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-35-turbo", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
    ("ft:gpt-4", "cl100k_base"),
    ("ft:gpt-3.5-turbo", "cl100k_base"),
)


def encoding_name_for_model(model: str) -> str | None:
    """The encoding of a model name (dated or not), or None if the model is not known."""
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-oss-20b" and other provider-prefixed names
        name = name.rsplit("/", 1)[1]
    for prefix, encoding in MODEL_ENCODINGS:
        if name == prefix or name.startswith(prefix + "-") or name.startswith(prefix + "."):
            return encoding
        if prefix.endswith(("-", ".")) and name.startswith(prefix):
            return encoding
    return None


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Load a shipped encoding once per process. Fails loudly if the data was altered."""
    import tiktoken

    expected, pattern, specials = _ENCODINGS[name]
    data = gzip.decompress(
        resources.files("chargeback").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    )
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise RuntimeError(
            f"chargeback/data/{name}.tiktoken.gz has sha256 {digest}, not {expected}"
        )
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
    )


def encoding_for_model(model: str) -> tiktoken.Encoding:
    name = encoding_name_for_model(model)
    if name is None:
        raise UnknownModel(f"no tokenizer is known for model {model!r}")
    return get_encoding(name)


def count_text(text: str, encoding: tiktoken.Encoding) -> int:
    """Tokens of plain text. Special-token strings in user text count as ordinary text."""
    return len(encoding.encode_ordinary(text))


# --- Counts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenCounts:
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


# --- Estimation -----------------------------------------------------------------------------

# Chat format overhead. Source: OpenAI cookbook, "How to count tokens with tiktoken"
# (num_tokens_from_messages): every message is wrapped as <|start|>{role}\n{content}<|end|>\n,
# a name costs one more, and every reply is primed with <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def estimate(exchange: Exchange, model: str) -> TokenCounts:
    """Estimate prompt and completion tokens from the bodies, with the model's encoding."""
    encoding = encoding_for_model(model)
    notes: list[str] = []
    prompt = _estimate_prompt(exchange, encoding, notes)
    completion = _estimate_completion(exchange, encoding)
    if exchange.request is None:
        notes.append("request-missing")
    if exchange.request_truncated or exchange.response_truncated:
        notes.append("body-truncated")
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion,
        source="estimated",
        notes=tuple(notes),
    )


def _estimate_prompt(exchange: Exchange, encoding: tiktoken.Encoding, notes: list[str]) -> int:
    request = exchange.request or {}
    if exchange.operation == "chat.completion":
        return _chat_prompt(request.get("messages"), encoding)
    if exchange.operation == "embeddings":
        return _embeddings_input(request.get("input"), encoding)
    if exchange.operation == "text_completion":
        return _embeddings_input(request.get("prompt"), encoding)
    if exchange.operation == "responses":
        return _responses_prompt(request, encoding)
    notes.append("operation-unknown")
    return 0


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _chat_prompt(messages: Any, encoding: tiktoken.Encoding) -> int:
    if not isinstance(messages, list):
        return 0
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += count_text(_text_of(value), encoding)
            elif key == "name" and isinstance(value, str):
                total += TOKENS_PER_NAME + count_text(value, encoding)
            elif key == "role" and isinstance(value, str):
                total += count_text(value, encoding)
    return total


def _embeddings_input(value: Any, encoding: tiktoken.Encoding) -> int:
    """A string, a list of strings, a token array, or a list of token arrays."""
    if isinstance(value, str):
        return count_text(value, encoding)
    if isinstance(value, list):
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return len(value)
        return sum(_embeddings_input(item, encoding) for item in value)
    return 0


def _responses_prompt(request: dict[str, Any], encoding: tiktoken.Encoding) -> int:
    total = 0
    if isinstance(request.get("instructions"), str):
        total += TOKENS_PER_MESSAGE + count_text(request["instructions"], encoding)
    items = request.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            total += TOKENS_PER_MESSAGE + count_text(_text_of(item.get("content")), encoding)
    return total + REPLY_PRIMING


def _estimate_completion(exchange: Exchange, encoding: tiktoken.Encoding) -> int:
    if exchange.operation == "embeddings":
        return 0
    total = 0
    for choice in exchange.choices.values():
        total += count_text("".join(choice.text), encoding)
        for name, arguments in choice.tool_calls:
            total += count_text(name, encoding) + count_text(arguments, encoding)
    return total
