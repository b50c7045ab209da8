"""How a model's text is counted when its usage must be estimated, for every model.

OpenAI models are counted with their own encoding (`chargeback.tokens.encodings`). The other
families served through Azure AI Foundry's OpenAI-compatible endpoints (Llama, Mistral,
DeepSeek, Phi, Cohere, ...) are billed in their own tokenizer's tokens, which this package does
not ship. Such a call is still billed, never dead-lettered for want of a tokenizer:

1. A tokenizer the operator names for the family (app setting ``CHARGEBACK_TOKENIZERS``: a
   Hugging Face ``tokenizer.json`` loaded with the ``tokenizers`` package, or a tiktoken ranks
   file) counts its text exactly; the chat template around it is the OpenAI one, so the estimate
   says ``template-approximate``.
2. Otherwise o200k_base counts it, times the family's factor (`FAMILIES`), and the estimate says
   ``tokenizer-approximate``. A model of no known family is counted the same way, factor 1.
3. A model the operator lists in ``CHARGEBACK_UNESTIMATED_MODELS`` is dead-lettered
   (``unknown-model``) when its tokens must be estimated: for a family whose approximation the
   operator will not bill on.

The factors are measured on the recordings of each family that the corpora hold
(``../shared/corpus``, pydantic-ai's recordings of other providers' OpenAI-compatible
endpoints): the ratio of the tokens billed to o200k_base's count of the same text, where the
text is what differs between calls (the slope of billed against counted prompts, or the visible
replies). What a provider adds around the text (a tool-use system prompt, image tokens) is not
in the factor and not in the estimate: the flag says so.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargeback.errors import ConfigurationError, UnknownModel
from chargeback.tokens.cache import Encoding as TextEncoding
from chargeback.tokens.encodings import encoding_name_for_model, get_encoding, split_pattern

if TYPE_CHECKING:
    from chargeback.settings import Settings

__all__ = [
    "FAMILIES",
    "Family",
    "TextEncoding",
    "Tokenizer",
    "Tokenizers",
    "counted_as",
    "family_of",
    "load_tokenizer_file",
    "names_a_model",
    "parse_tokenizers_setting",
]

APPROXIMATE = "tokenizer-approximate"
TEMPLATE_APPROXIMATE = "template-approximate"


@dataclass(frozen=True, slots=True)
class Family:
    """A model family without an OpenAI tokenizer, and the factor that turns o200k_base counts
    into its tokens."""

    name: str
    factor: float
    #: the measurement behind the factor, or why there is none
    measured: str


_LLAMA = Family(
    "llama",
    1.00,
    "pydantic-ai's 19 llama-4-maverick calls (Groq) without images: billed = 662 + 1.000 x"
    " o200k_base's count (662: the provider's tool-use prompt, not estimated); llama-3.3-70b,"
    " one call, 8 billed for 7 counted in its reply",
)
_MISTRAL = Family(
    "mistral",
    1.00,
    "pydantic-ai's mistral-medium-latest: 6 plain-text replies, 723 billed for 723 counted;"
    " prompts carry Mistral's tool prompt (+15) that is not estimated",
)
_QWEN = Family(
    "qwen",
    1.04,
    "pydantic-ai's 2 qwen-3-coder-480b calls (Cerebras): prompt slope 1.034, one reply 25 for"
    " 24: one source, three sides",
)
_GEMINI = Family(
    "gemini",
    1.00,
    "pydantic-ai's 2 gemini-2.5-pro-preview calls: one reply 6 for 6; prompts 0.81 and 1.02:"
    " two calls only",
)
_UNMEASURED = "no recording of the family: o200k_base as is"

#: Model-name prefix (lower case, provider prefix such as ``meta-llama/`` dropped) -> family,
#: most specific first.
FAMILIES: tuple[tuple[str, Family], ...] = (
    ("llama", _LLAMA),
    ("meta-llama", _LLAMA),
    ("mistral", _MISTRAL),
    ("mixtral", _MISTRAL),
    ("ministral", _MISTRAL),
    ("codestral", _MISTRAL),
    ("magistral", _MISTRAL),
    ("pixtral", _MISTRAL),
    ("devstral", _MISTRAL),
    ("open-mistral", _MISTRAL),
    ("open-mixtral", _MISTRAL),
    ("qwen", _QWEN),
    ("gemini", _GEMINI),
    ("gemma", _GEMINI),
    ("deepseek", Family("deepseek", 1.0, _UNMEASURED)),
    ("phi", Family("phi", 1.0, _UNMEASURED)),
    ("cohere", Family("cohere", 1.0, _UNMEASURED)),
    ("command", Family("cohere", 1.0, _UNMEASURED)),
    ("jamba", Family("jamba", 1.0, _UNMEASURED)),
    ("ai21", Family("jamba", 1.0, _UNMEASURED)),
    ("grok", Family("grok", 1.0, _UNMEASURED)),
    ("kimi", Family("kimi", 1.0, _UNMEASURED)),
)
#: Model names up to this length are remembered, up to this many (`Tokenizers.for_model`).
_CACHED_NAME = 256
_CACHED_NAMES = 1024

#: A model of no family this table knows (a new name, a deployment placeholder): o200k_base.
UNKNOWN_FAMILY = Family("unknown", 1.0, "no family known: o200k_base as is")


def _key(model: str) -> str:
    return model.strip().lower().rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=1024)
def family_of(model: str) -> Family:
    """The family of a model name that has no OpenAI encoding (`UNKNOWN_FAMILY` if none)."""
    name = model.strip().lower()
    short = _key(model)
    for prefix, family in FAMILIES:
        if short.startswith(prefix) or name.startswith(prefix):
            return family
    return UNKNOWN_FAMILY


def names_a_model(name: str) -> bool:
    """An OpenAI model, or a model of a family without one (a Foundry deployment is often named
    after its model: "Llama-3.3-70B-Instruct")."""
    return encoding_name_for_model(name) is not None or family_of(name) is not UNKNOWN_FAMILY


def counted_as(model: str, *others: str | None) -> str:
    """The name whose tokenizer counts the call: the model, unless the API reports it under a
    name no table knows (``babbage:2023-07-21-v2`` for babbage-002, an Azure placeholder) while
    one of ``others`` (the request's model, the deployment) names a known OpenAI model."""
    if names_a_model(model):
        return model
    for name in others:
        if name and encoding_name_for_model(name) is not None:
            return name
    return model


@dataclass(frozen=True, slots=True)
class Tokenizer:
    """How one model's text is counted: an encoding, times a factor, and what the estimate
    says about it."""

    encoding: TextEncoding
    factor: float = 1.0
    notes: tuple[str, ...] = ()


class Tokenizers:
    """The tokenizers of the process: OpenAI encodings by model name, the operator's per
    family, o200k_base times a family factor otherwise. Built once (`from_settings`)."""

    def __init__(
        self,
        configured: Mapping[str, TextEncoding] | None = None,
        unestimated: Iterable[str] = (),
    ) -> None:
        # longest prefix first, so that "llama-3" wins over "llama"
        self._configured = sorted(
            ((prefix.lower(), encoding) for prefix, encoding in (configured or {}).items()),
            key=lambda item: -len(item[0]),
        )
        self._unestimated = tuple(prefix.lower() for prefix in unestimated if prefix)
        # Asked once per estimated call, of few distinct names: each name's answer is kept
        # (bounded, and not for a long name, so that hostile names cost little).
        self._found: dict[str, Tokenizer] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokenizers:
        """Load the configured tokenizer files now; a bad one fails fast, naming the setting."""
        configured = {
            prefix: _load_configured(prefix, spec) for prefix, spec in settings.tokenizers.items()
        }
        return cls(configured, settings.unestimated_models)

    def for_model(self, model: str) -> Tokenizer:
        """How to count this model's text. Raises `UnknownModel` for a model the operator marked
        as not estimated."""
        found = self._found.get(model)
        if found is None:
            found = self._find(model)
            if len(model) <= _CACHED_NAME:
                if len(self._found) >= _CACHED_NAMES:
                    self._found.clear()
                self._found[model] = found
        return found

    def _find(self, model: str) -> Tokenizer:
        name, short = model.strip().lower(), _key(model)
        if any(name.startswith(p) or short.startswith(p) for p in self._unestimated):
            raise UnknownModel(
                f"model {model!r} is listed in CHARGEBACK_UNESTIMATED_MODELS: its tokens are not"
                " estimated"
            )
        encoding = encoding_name_for_model(model)
        if encoding is not None:
            return Tokenizer(get_encoding(encoding))
        for prefix, configured in self._configured:
            if name.startswith(prefix) or short.startswith(prefix):
                return Tokenizer(configured, notes=(TEMPLATE_APPROXIMATE,))
        family = family_of(model)
        return Tokenizer(get_encoding("o200k_base"), family.factor, (APPROXIMATE,))


# --- Tokenizer files the operator names -----------------------------------------------------


class _HuggingFace:
    """A Hugging Face ``tokenizer.json``: text without the model's special tokens. Its ``name``
    (the file's path) keys its counts in the token-count cache (`chargeback.tokens.cache`)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    def encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        return ids


def _load_configured(prefix: str, spec: Any) -> TextEncoding:
    if isinstance(spec, str):
        path, split = spec, None
    elif isinstance(spec, dict) and isinstance(spec.get("path"), str):
        path, split = spec["path"], spec.get("split")
    else:
        raise ConfigurationError(
            f"invalid configuration: app setting CHARGEBACK_TOKENIZERS: {prefix!r} must name a"
            ' file, or {"path": ..., "split": ...}'
        )
    try:
        return load_tokenizer_file(Path(path), split)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"invalid configuration: app setting CHARGEBACK_TOKENIZERS: {prefix!r}: {exc}"
        ) from None


def load_tokenizer_file(path: Path, split: str | None = None) -> TextEncoding:
    """A tokenizer from a file: ``*.json`` is a Hugging Face ``tokenizer.json``; anything else a
    tiktoken ranks file (one ``base64-token rank`` a line) split like ``split`` (an encoding
    name of ours, o200k_base by default, or a regular expression)."""
    if path.suffix == ".json":
        try:
            from tokenizers import Tokenizer as HuggingFaceTokenizer
        except ImportError:
            # Optional: only an operator who names a tokenizer.json needs it deployed.
            raise ValueError(
                "a tokenizer.json needs the `tokenizers` package: add `tokenizers==0.23.3` to"
                " requirements.txt (the Function installs it on deploy)"
            ) from None

        try:
            loaded = HuggingFaceTokenizer.from_file(str(path))
        except Exception as exc:  # the package raises its own untyped errors
            raise ValueError(f"not a tokenizer.json: {path}: {exc}") from None
        return _HuggingFace(loaded, f"tokenizer.json:{path.resolve()}")
    return _tiktoken_file(path, split or "o200k_base")


def _tiktoken_file(path: Path, split: str) -> TextEncoding:
    import tiktoken

    ranks: dict[bytes, int] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{number}: not a 'base64-token rank' line")
        ranks[base64.b64decode(parts[0])] = int(parts[1])
    if not ranks:
        raise ValueError(f"{path}: no ranks")
    # The name keys the file's counts in the token-count cache: the path and split make it
    # the file's own, never one of our encodings' names.
    return tiktoken.Encoding(
        name=f"file:{path.resolve()}|{split}",
        pat_str=split_pattern(split),
        mergeable_ranks=ranks,
        special_tokens={},
    )


def parse_tokenizers_setting(value: Any) -> dict[str, Any]:
    """``CHARGEBACK_TOKENIZERS`` as the settings read it: a JSON object of model-name prefix ->
    file path or ``{"path": ..., "split": ...}``."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
