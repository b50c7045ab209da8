"""The encodings, shipped with the package (``chargeback/data/*.tiktoken.gz``, checked against the
sha256 that tiktoken itself expects), so nothing is downloaded at run time: a Function App without
egress counts tokens too; and which model uses which."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
from importlib import resources
from typing import TYPE_CHECKING

from chargeback.errors import UnknownModel

if TYPE_CHECKING:
    import tiktoken

    from chargeback.tokens.cache import Encoding

__all__ = [
    "MODEL_ENCODINGS",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "split_pattern",
]


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
    # Asked per message, of few distinct names; a long one (not a model's) is not kept.
    return _encoding_name(model) if len(model) <= _CACHED_NAME else _find_encoding_name(model)


#: Model names up to this length are remembered (bounded, so that hostile names cost little).
_CACHED_NAME = 256


def _find_encoding_name(model: str) -> str | None:
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-oss-20b" and other provider-prefixed names
        name = name.rsplit("/", 1)[1]
    for prefix, encoding in MODEL_ENCODINGS:
        if name == prefix or name.startswith(prefix + "-") or name.startswith(prefix + "."):
            return encoding
        if prefix.endswith(("-", ".")) and name.startswith(prefix):
            return encoding
    return None


_encoding_name = functools.lru_cache(maxsize=1024)(_find_encoding_name)


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
    # Line by line from a stream, not a list of every line first: the list alone is 10 MB.
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in io.BytesIO(data) if line.strip())
    }
    del data
    encoding = tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
    )
    # tiktoken's Rust core keeps its own copy of the ranks; the Python dict is kept only to
    # pickle the encoding (Encoding.__getstate__, tiktoken 0.14.0), which nothing here does.
    # Emptied, it gives back about 25 MB (o200k_base) for the life of the process: the peak
    # memory of a batch (README, "Performance").
    ranks.clear()
    return encoding


def encoding_for_model(model: str) -> tiktoken.Encoding:
    name = encoding_name_for_model(model)
    if name is None:
        raise UnknownModel(f"no tokenizer is known for model {model!r}")
    return get_encoding(name)


def count_text(text: str, encoding: Encoding) -> int:
    """Tokens of plain text. Special-token strings in user text count as ordinary text."""
    return len(encoding.encode_ordinary(text))


def split_pattern(name: str) -> str:
    """The split regex of one of our encodings by name, or ``name`` itself as a regex."""
    return _ENCODINGS[name][1] if name in _ENCODINGS else name
