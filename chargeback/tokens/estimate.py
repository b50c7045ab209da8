"""Stage 4: tokens. Reported usage wins; otherwise count with tiktoken.

The encodings ship with the package (``chargeback/data/*.tiktoken.gz``, checked against the sha256
that tiktoken itself expects), so nothing is downloaded at run time: a Function App without
egress counts tokens too.

Estimation rules are tables keyed by model family (`CHAT_RULES` here, `chargeback.tokens.images`
for images, `chargeback.tokens.tool_text` for how tool definitions read). Sources: the OpenAI cookbook
"How to count tokens with tiktoken"; openai-chat-tokens / LiteLLM ``token_counter`` (tools as
TypeScript); the OpenAI vision guide (image tiles and patches). Constants not in any source were
measured with ``python -m chargeback accuracy tests/data/recorded-exchanges.jsonl``:

=====================  ==========================================================================
family                 measured choice
=====================  ==========================================================================
gpt-4o, 4.1, 4.5       cookbook 3/1/3; tools: TypeScript rendering + 5 (system message present)
                       or + 9 (none), + 3 in the Responses API either way; tool call in history
                       + 0, tool result + 5 + function name (Responses + 3), + 7 per call when
                       parallel; reply tool call + 7 (+ 7 when parallel)
every family           a function with parameters and no description: rendering - 1
o1, o3, o4-mini        priming 2 (one fewer); visible reply overhead 13 (chat), 1 (Responses)
gpt-5 family           priming 2; tools + 90 without / + 86 with a system message (chat),
                       + 8 (Responses); visible reply overhead 9 (chat), 6 (Responses)
gpt-4o-search-preview  system message not billed; priming 2
gpt-oss                harmony system preamble 60
gpt-3.5-turbo-0301     cookbook: 4 per message, -1 per name
=====================  ==========================================================================

Tools, cookbook vs TypeScript rendering, on the 57 recorded chat calls with tools (one constant
fitted per family and system-message presence for each): TypeScript 49 exact, 55 within ±2;
cookbook 43 exact, 49 within ±2. TypeScript is used for every family. With the Responses and
undescribed-function rules above, 53 of the 57 are exact and the Responses calls with content in
view 81% (130 calls; 70% before them). Responses calls recorded in the API's launch week
(2025-03-27: records 399, 418, 433, 434, 436) bill 18 more for instructions and about 210 more
for a tool block; every later recording of the same calls matches the rules here, so those five
stay as they are: the service changed, not the rule.

``response_format`` JSON schemas: the format's name + compact JSON without
``additionalProperties``; exact on flat schemas in both APIs (records 286, 327, 328), +17 / +25
on a nested ``anyOf`` schema (287, 329: no JSON or TypeScript variant tried fits both shapes),
so every such estimate is flagged ``response-format-approximate``.

Completion side (measured, see the rules' comments): a named tool_choice (or ``required`` with one
function tool) bills only the arguments + 1; a json_schema text reply + 5 (gpt-4o) / + 3 (gpt-5);
a gpt-5 Responses message + 4, a message before another output item (a harmony preamble) + 3
more, and each hidden reasoning item + 2; visible reasoning (gpt-oss) is counted and reported as
reasoning tokens; Responses reasoning summaries are not billed output.

What cannot be seen offline is flagged in ``notes`` (the event's ``Estimate`` dimension), never
guessed silently: ``reasoning-unseen`` (hidden reasoning tokens of reasoning models),
``image-size-unknown`` (image by URL or file id: CHARGEBACK_IMAGE_URL_POLICY applies),
``file-input`` (files, audio), ``context-invisible`` (previous_response_id, conversation,
item references, compaction), ``encrypted-reasoning`` (reasoning items in the input),
``server-tools`` (built-in tools: definitions and results added server-side),
``reasoning-remainder-unseen`` (a Responses reply with hidden reasoning from a model that reports
reasoning_tokens in steps of 64: up to 63 hidden tokens land in the visible count),
``server-tool-output`` and ``compaction-output`` (output items the service writes),
``reasoning-mode`` (a Responses ``reasoning.mode`` such as "pro": unseen work on both sides).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from chargeback.errors import UnknownModel

if TYPE_CHECKING:
    import tiktoken

    from chargeback.bodies.exchange import Choice, Exchange

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


# --- Estimation rules -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatRule:
    """How a model family wraps a conversation in tokens, beyond the text itself."""

    per_message: int = 3  # <|start|>{role}<|message|>...<|end|>: 3 plus the role's own tokens
    per_name: int = 1
    priming: int = 3  # <|start|>assistant<|message|> that opens the reply
    tools_with_system: int = 5  # tool block appended to an existing system message
    tools_without_system: int = 9  # tool block in a system message of its own
    #: the Responses API's tool block, whether or not a system message exists (measured: gpt-4o
    #: and gpt-4.1 records 327, 416, 449, 451, 456 from 2025-06 on were +6 / +2 with chat's 9 / 5)
    responses_tools: int = 3
    tool_call: int = 0  # per assistant tool call in the history, beyond name and arguments
    tool_result: int = 5  # per tool result, beyond its content and the function's name
    #: the same for a Responses ``function_call_output`` item (measured: a function_call and its
    #: output cost 2 more than in chat on every gpt-4o / 4.1 pair, records 328, 402, 417, 450,
    #: 452, 457, 459); None: as in chat
    responses_tool_result: int | None = 3
    parallel_call: int = 7  # per call when one message holds several (multi_tool_use wrapper)
    reply: int = 0  # per reply: visible channel headers of reasoning models
    responses_reply: int = 1  # the same in the Responses API (measured)
    reply_call: int = 7  # per tool call in a reply, beyond name and arguments
    reply_parallel_call: int = 7  # more per call when a reply holds several
    #: a hidden reasoning item in a Responses output: its channel header, outside reasoning_tokens
    responses_reasoning_item: int = 0
    #: a Responses message followed by another output item (a preamble before a tool call)
    responses_preamble: int = 0
    #: the usage reports reasoning_tokens in steps of this many (0: exactly)
    reasoning_step: int = 0
    forced_call: int = 1  # a reply to a named tool_choice: arguments + this
    #: per built-in tool call in a Responses output (item type -> tokens beyond what the model
    #: wrote), see BUILTIN_CALLS
    builtin_call: Mapping[str, int] = field(default_factory=dict)
    visible_reasoning: int = 0  # a reply that shows its reasoning: that channel's headers
    #: a reply under a json_schema response format (measured: gpt-4o records 286, 288, 328, 330
    #: all -5 without it; tool-call replies under the same format (287, 327, 329) exact)
    schema_reply: int = 5
    drops_system: bool = False  # the system message is not billed
    preamble: int = 0  # a fixed system message the service adds
    reasoning: bool = False  # bills hidden reasoning tokens as completion tokens


_REASONING = ChatRule(priming=2, reply=13, responses_reply=1, reasoning=True, reasoning_step=64)

# measured: one priming token fewer; the harmony tool block is far larger. A Responses message
# costs 4 beyond its text, a hidden reasoning item 2 more (its header, not in reasoning_tokens):
# rt=0 replies (records 431, 447, 420, 422, 344) were +2 with 6 per message; with a reasoning
# item (441, 443, 445, 384) exact at 4 + 2. reasoning_tokens come in steps of 64 for gpt-5,
# gpt-5-mini and the o-series (every recorded value), exactly for gpt-5.2 and later (9, 29, 34,
# 49, 59, 100).
_GPT5 = ChatRule(
    priming=2,
    tools_with_system=86,
    tools_without_system=90,
    responses_tools=8,
    responses_tool_result=None,  # one record with a function_call pair (380), not enough to fit
    reply=9,
    responses_reply=4,
    responses_reasoning_item=2,
    # Harmony format (openai/harmony docs, "Preambles"): a message before a tool call goes on the
    # commentary channel and ends with <|end|>, and the next item opens with <|start|>assistant:
    # "commentary" is 2 tokens where "final" is 1, plus those 2 = 3 more than a final message.
    # Records 419, 421 (gpt-5.5: reasoning, commentary message, function call) -4, -3 -> -1, 0.
    responses_preamble=3,
    schema_reply=3,  # one record (295, gpt-5.4-mini)
    # code written for the code interpreter, beyond its text (records 352-354: -8 each)
    builtin_call={"code_interpreter_call": 8},
    reasoning=True,
    reasoning_step=64,
)
_GPT5_POINT = replace(_GPT5, reasoning_step=0)

# Model prefix -> chat rule, most specific first. Sources: OpenAI cookbook "How to count tokens
# with tiktoken" (per message 3, per name 1, priming 3; gpt-3.5-turbo-0301: 4 and -1);
# openai-chat-tokens (tool block in the system message, 4 fewer when one exists). Constants
# marked "measured" were fitted on the recorded exchanges (tests/data), see the module doc.
CHAT_RULES: tuple[tuple[str, ChatRule], ...] = (
    ("gpt-3.5-turbo-0301", ChatRule(per_message=4, per_name=-1)),
    ("gpt-35-turbo-0301", ChatRule(per_message=4, per_name=-1)),
    # measured: search models do not bill the system message, and prime with 2.
    ("gpt-4o-search-preview", ChatRule(drops_system=True, priming=2)),
    ("gpt-4o-mini-search-preview", ChatRule(drops_system=True, priming=2)),
    # measured: the harmony system preamble (identity, dates, reasoning level, channels).
    # Visible reasoning (message.reasoning, reasoning_text parts): the analysis and final
    # channel headers, 1 + 9 (records 274: 9 + 17 + 10 = 36; 423: 1 + 26 + 10 = 37).
    ("gpt-oss", ChatRule(preamble=60, priming=3, reply=1, visible_reasoning=9, reasoning=True)),
    # measured: one priming token fewer; the harmony tool block is far larger.
    ("gpt-5.", _GPT5_POINT),
    ("gpt-5", _GPT5),
    # measured on one call only (record 306): priming 10, reply 11.
    ("o1-mini", ChatRule(priming=10, reply=11, reasoning=True, reasoning_step=64)),
    ("o1", _REASONING),
    ("o3", _REASONING),
    ("o4", _REASONING),
    ("codex-mini", _REASONING),
)
_DEFAULT_CHAT = ChatRule()


def chat_rule(model: str) -> ChatRule:
    return _chat_rule(model) if len(model) <= _CACHED_NAME else _find_chat_rule(model)


def _find_chat_rule(model: str) -> ChatRule:
    name = model.strip().lower().rsplit("/", 1)[-1]
    return next((rule for prefix, rule in CHAT_RULES if name.startswith(prefix)), _DEFAULT_CHAT)


_chat_rule = functools.lru_cache(maxsize=1024)(_find_chat_rule)


# What an image given by URL (size unknown offline) is billed as, per CHARGEBACK_IMAGE_URL_POLICY.
# Default "high": a 1024×1024 image at high detail (4 tiles; 1024 patches), the size most
# clients send after their own resizing; "low": the low-detail price; "skip": nothing.
ImageUrlPolicy = Literal["high", "low", "skip"]
_URL_IMAGE_SIZE: dict[str, tuple[int, int, Literal["low", "high"]]] = {
    "high": (1024, 1024, "high"),
    "low": (512, 512, "low"),
}


# --- Estimation -----------------------------------------------------------------------------


def estimate(
    exchange: Exchange, model: str, *, image_url_policy: ImageUrlPolicy = "high"
) -> TokenCounts:
    """Estimate prompt and completion tokens from the bodies, with the model's encoding."""
    counter = _Counter(model, image_url_policy)
    prompt = counter.prompt(exchange)
    completion = counter.completion(exchange)
    # What the bodies stage could not read (an unreadable request, a broken stream chunk) makes
    # the estimate weaker: it says so on the event.
    notes = [*exchange.notes, *counter.notes]
    if exchange.request is None:
        notes.append("request-missing")
    if exchange.request_truncated or exchange.response_truncated:
        notes.append("body-truncated")
    if counter.rule.reasoning and exchange.operation != "embeddings":
        notes.append("reasoning-unseen")  # hidden reasoning tokens are billed but never shown
    return TokenCounts(
        prompt=prompt,
        completion=completion,
        total=prompt + completion,
        reasoning=counter.reasoning,
        source="estimated",
        notes=tuple(dict.fromkeys(notes)),
    )


class _Counter:
    """Counts one exchange with one model's encoding and rules; collects the notes."""

    def __init__(self, model: str, image_url_policy: ImageUrlPolicy) -> None:
        from chargeback.tokens.images import image_rule

        self.encoding = encoding_for_model(model)
        self.rule = chat_rule(model)
        self.image_rule = image_rule(model)
        self.image_url_policy = image_url_policy
        self.notes: list[str] = []
        self.reasoning = 0  # reasoning tokens the body shows as text
        self.call_names: dict[str, str] = {}  # tool call id -> function name
        self.api: Literal["chat", "responses"] = "chat"  # whose wrappers images get

    def text(self, value: Any) -> int:
        return count_text(value, self.encoding) if isinstance(value, str) and value else 0

    # --- prompt side ---

    def prompt(self, exchange: Exchange) -> int:
        request = exchange.request or {}
        if exchange.operation == "chat.completion":
            return self.chat(request)
        if exchange.operation == "embeddings":
            return self.inputs(request.get("input"))
        if exchange.operation == "text_completion":
            return self.inputs(request.get("prompt"))
        if exchange.operation == "responses":
            self.api = "responses"
            return self.responses(request)
        self.notes.append("operation-unknown")
        return 0

    def inputs(self, value: Any) -> int:
        """A string, a list of strings, a token array, or a list of token arrays."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
                return len(value)
            return sum(self.inputs(item) for item in value)
        return 0

    def chat(self, request: dict[str, Any]) -> int:
        messages = [m for m in _list(request.get("messages")) if isinstance(m, dict)]
        has_system = any(m.get("role") in ("system", "developer") for m in messages)
        total = self.rule.priming + self.rule.preamble
        total += sum(self.message(message) for message in messages)
        functions = _functions(request.get("tools")) + _functions(request.get("functions"))
        total += self.tools(functions, has_system)
        total += self.tool_choice(request.get("tool_choice") or request.get("function_call"))
        return total + self.response_format(request.get("response_format"))

    def message(self, message: dict[str, Any]) -> int:
        role = message.get("role")
        if self.rule.drops_system and role in ("system", "developer"):
            return 0
        total = self.rule.per_message + self.text(role) + self.content(message.get("content"))
        if isinstance(message.get("name"), str):
            total += self.rule.per_name + self.text(message["name"])
        calls = [c for c in _list(message.get("tool_calls")) if isinstance(c, dict)]
        if isinstance(message.get("function_call"), dict):
            calls.append({"function": message["function_call"]})
        total += sum(self.tool_call(call, len(calls) > 1) for call in calls)
        if role == "tool":
            name = self.call_names.get(_str(message.get("tool_call_id")), "")
            total += self.rule.tool_result + self.text(name)
        return total

    def tool_call(self, call: dict[str, Any], parallel: bool) -> int:
        function = _inner(call, "function")
        name, arguments = _str(function.get("name")), _str(function.get("arguments"))
        if isinstance(call.get("id"), str):
            self.call_names[call["id"]] = name
        extra = self.rule.parallel_call if parallel else 0
        return self.rule.tool_call + extra + self.text(name) + self.text(arguments)

    def content(self, content: Any) -> int:
        """A message's content: a string, or an array of text, image, audio and file parts."""
        if isinstance(content, str):
            return self.text(content)
        texts: list[str] = []
        total = 0
        for part in _list(content):
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") in ("image_url", "input_image"):
                total += self.image(part)
            elif part.get("type") in ("input_audio", "file", "input_file"):
                self.notes.append("file-input")
        return total + self.text("".join(texts))

    def image(self, part: dict[str, Any]) -> int:
        from chargeback.tokens.images import data_url_size, image_tokens

        source = part.get("image_url")
        detail = part.get("detail")
        if isinstance(source, dict):
            detail = source.get("detail")
            source = source.get("url")
        level: Literal["low", "high"] = "low" if detail == "low" else "high"
        size = data_url_size(source) if isinstance(source, str) else None
        if size is None:
            self.notes.append("image-size-unknown")
            assumed = _URL_IMAGE_SIZE.get(self.image_url_policy)
            if assumed is None:
                return 0
            width, height, assumed_level = assumed
            cheaper: Literal["low", "high"] = "low" if "low" in (level, assumed_level) else "high"
            return image_tokens(self.image_rule, width, height, cheaper, self.api)
        return image_tokens(self.image_rule, size[0], size[1], level, self.api)

    def tools(self, functions: list[dict[str, Any]], has_system: bool, api: str = "chat") -> int:
        if not functions:
            return 0
        from chargeback.tokens.tool_text import render_functions

        rule = self.rule
        overhead = rule.tools_with_system if has_system else rule.tools_without_system
        if api == "responses":
            overhead = rule.responses_tools
        # measured: a function with parameters but no description reads one token shorter than
        # its rendering, in chat and Responses alike (records 271, 272, 304, 305, 348, 401, 402,
        # 419, 421, 446 were all +1; described ones, and ones without parameters, exact)
        bare = sum(1 for f in functions if _undescribed_with_parameters(f))
        return overhead - bare + self.text(render_functions(functions))

    def tool_choice(self, choice: Any) -> int:
        # openai-chat-tokens: "none" costs one token; naming a function costs 4 plus the name.
        if choice == "none":
            return 1
        if isinstance(choice, dict):
            return 4 + self.text(_inner(choice, "function").get("name"))
        return 0

    def response_format(self, response_format: Any) -> int:
        if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
            return 0
        from chargeback.tokens.tool_text import render_schema

        spec = response_format.get("json_schema", response_format)
        if not isinstance(spec, dict):
            return 0
        self.notes.append("response-format-approximate")
        # Its name and the rendered schema, nothing more (measured: records 286 "result", 327
        # and 328 "CityLocation" exact; the former fixed + 1 left 327 and 328 at -1).
        return self.text(spec.get("name")) + self.text(render_schema(spec.get("schema")))

    def responses(self, request: dict[str, Any]) -> int:
        if request.get("previous_response_id") or request.get("conversation"):
            self.notes.append("context-invisible")  # earlier turns are billed again
        reasoning = request.get("reasoning")
        if isinstance(reasoning, dict) and reasoning.get("mode") is not None:
            # A reasoning mode ("pro") runs work the bodies never show, on both sides: record
            # 429 bills 1549 input tokens for an 18-token question and 30 output tokens for a
            # one-word answer with reasoning_tokens 0 and no reasoning item.
            self.notes.append("reasoning-mode")
        items = request.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        total = self.rule.priming + self.rule.preamble
        # Empty instructions are not sent to the model (record 428: +4 with them counted).
        has_system = isinstance(request.get("instructions"), str) and bool(request["instructions"])
        if has_system:
            total += self.message({"role": "developer", "content": request["instructions"]})
        for item in _list(items):
            if isinstance(item, dict):
                has_system = has_system or item.get("role") in ("system", "developer")
                total += self.response_item(item)
        tools = _list(request.get("tools"))
        functions = _functions(tools)
        if len(functions) < len(tools):
            self.notes.append("server-tools")  # their definitions and results are added server-side
        total += self.tools(functions, has_system, "responses")
        total += self.tool_choice(request.get("tool_choice"))
        text = request.get("text")
        if isinstance(text, dict):
            total += self.response_format(text.get("format"))
        return total

    def response_item(self, item: dict[str, Any]) -> int:
        kind = item.get("type", "message")
        if kind == "message" or "role" in item:
            return self.message(item)
        if kind == "function_call":
            self.call_names[_str(item.get("call_id"))] = _str(item.get("name"))
            return self.rule.per_message + 1 + self.tool_call(item, parallel=False)
        if kind == "function_call_output":
            output = item.get("output")
            name = self.call_names.get(_str(item.get("call_id")), "")
            result = self.rule.responses_tool_result
            result = self.rule.tool_result if result is None else result
            total = self.rule.per_message + 1 + result + self.text(name)
            return total + self.content(output)
        if kind == "reasoning":
            self.notes.append("encrypted-reasoning")
            return 0
        self.notes.append(_INPUT_ITEM_NOTES.get(kind, "server-tools"))
        return 0

    # --- completion side ---

    def completion(self, exchange: Exchange) -> int:
        if exchange.operation == "embeddings":
            return 0
        responses = exchange.operation == "responses"
        overhead = self.rule.responses_reply if responses else self.rule.reply
        request = exchange.request or {}
        forced = _forced_function(request)
        schema = self.rule.schema_reply if _json_schema(request) else 0
        choices = exchange.choices.values()
        total = sum(self.reply(choice, overhead, forced, schema) for choice in choices)
        if responses and self.rule.responses_preamble:
            # Responses output items are choices by position; a message that is not the last
            # item is a preamble (phase "commentary") to what follows.
            last = max(exchange.choices, default=0)
            total += self.rule.responses_preamble * sum(
                1
                for index, choice in exchange.choices.items()
                if index != last and choice.text and not choice.tool_calls
            )
        hidden = sum(choice.hidden_reasoning for choice in choices)
        if hidden:
            total += hidden * self.rule.responses_reasoning_item
            if self.rule.reasoning_step:
                self.notes.append("reasoning-remainder-unseen")
        kinds = {kind for choice in choices for kind, _ in choice.builtin_calls}
        if "compaction" in kinds:  # the service's encrypted summary of the conversation
            self.notes.append("compaction-output")
        if kinds - {"compaction"}:
            self.notes.append("server-tool-output")
        return total

    def reply(self, choice: Choice, overhead: int, forced: bool, schema: int = 0) -> int:
        rule = self.rule
        per_call = rule.reply_call + (rule.reply_parallel_call if len(choice.tool_calls) > 1 else 0)
        total = self.text("".join(choice.text))
        if total and not choice.tool_calls:
            total += schema  # a structured-output text reply
        if forced and len(choice.tool_calls) == 1 and not total:
            # A named tool_choice puts the call's header in the prompt: the model writes only
            # the arguments and the end token (measured: record 49, 8 = 7 + 1).
            return self.text(choice.tool_calls[0][1]) + rule.forced_call
        for name, arguments in choice.tool_calls:
            total += per_call + self.text(name) + self.text(arguments)
        for kind, written in choice.builtin_calls:
            total += rule.builtin_call.get(kind, 0) + self.text(written)
        if choice.reasoning:
            reasoning = self.text("".join(choice.reasoning))
            self.reasoning += reasoning
            total += reasoning + rule.visible_reasoning
        return total + (overhead if total else 0)


# Responses input items the body cannot show the billed form of. Others (web_search_call,
# mcp_list_tools, mcp_call, code_interpreter_call, ...) are built-in tool turns: "server-tools".
_INPUT_ITEM_NOTES = {
    "item_reference": "context-invisible",  # an item stored server-side, by id
    "compaction": "context-invisible",  # the service's encrypted summary of earlier turns
}


def _forced_function(request: dict[str, Any]) -> bool:
    """The request makes the model call one given function: a tool_choice that names it (chat,
    Responses or legacy ``function_call``), or ``required`` with a single function tool."""
    choice = request.get("tool_choice") or request.get("function_call")
    if isinstance(choice, dict):
        return bool(_inner(choice, "function").get("name"))
    return choice == "required" and len(_list(request.get("tools"))) == 1


def _json_schema(request: dict[str, Any]) -> bool:
    """Structured outputs: a json_schema response format (chat) or text format (Responses)."""
    text = request.get("text")
    found = request.get("response_format") or (
        text.get("format") if isinstance(text, dict) else None
    )
    return isinstance(found, dict) and found.get("type") == "json_schema"


def _undescribed_with_parameters(function: dict[str, Any]) -> bool:
    parameters = function.get("parameters")
    described = isinstance(function.get("description"), str) and bool(function["description"])
    return not described and isinstance(parameters, dict) and bool(parameters.get("properties"))


def _functions(tools: Any) -> list[dict[str, Any]]:
    from chargeback.tokens.tool_text import function_of

    found = (function_of(tool) for tool in _list(tools))
    return [function for function in found if function is not None]


def _inner(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when it is an object (chat's nested form), else ``value`` (flat form)."""
    inner = value.get(key)
    return inner if isinstance(inner, dict) else value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
