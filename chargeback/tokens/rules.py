"""How each model family wraps a conversation in tokens: the rule tables of the estimate.

Rules are tables keyed by model family (`CHAT_RULES` here, `chargeback.tokens.images` for
images, `chargeback.tokens.tool_text` for how tool definitions read). Sources: the OpenAI
cookbook "How to count tokens with tiktoken"; openai-chat-tokens / LiteLLM ``token_counter``
(tools as TypeScript); OpenAI's harmony renderer (openai/harmony, tool and response-format
layout); the OpenAI vision guide (image tiles and patches). Constants not in any source were
measured with ``python -m chargeback accuracy tests/data/recorded-exchanges.jsonl``
(development) and, where marked "held out", on ``../shared/corpus/recorded-exchanges-more.jsonl``
(other projects), each change checked not to worsen the development figures:

=====================  ==========================================================================
family                 measured choice
=====================  ==========================================================================
gpt-4o, 4.1, 4.5       cookbook 3/1/3; tools: TypeScript rendering + 5 (system message present)
                       or + 9 (none), + 3 in the Responses API either way; tool call in history
                       + 0, tool result + 5 + function name (Responses + 3), + 7 per call when
                       parallel; reply tool call + 7 (+ 7 when parallel)
every family           a function with parameters and no description: rendering - 1; a
                       tool_choice naming a function 7 + its name (held out); a tool result's
                       own ``name`` not billed (held out)
o1, o3, o4-mini        priming 2 (one fewer); visible reply overhead 13 (chat), 1 (Responses)
gpt-5 family           priming 2; tools + 90 with or without a system message (chat),
                       + 8 (Responses); visible reply overhead 9 (chat), 6 (Responses)
gpt-4o-search-preview  system message not billed; priming 2
gpt-oss                harmony system preamble 60
gpt-3.5-turbo-0301     cookbook: 4 per message, -1 per name
=====================  ==========================================================================

Tools, cookbook vs TypeScript rendering, on the 57 recorded chat calls with tools (one constant
fitted per family and system-message presence for each): TypeScript 49 exact, 55 within ±2;
cookbook 43 exact, 49 within ±2. TypeScript is used for every family, as OpenAI's harmony renderer
writes it (titles, descriptions at every depth, defaults: `chargeback.tokens.tool_text`); on the
held-out chat calls with tools or a schema that took them from 30% to 77% within ±2 (held-out
figures with the response-format rule of the same round; development unchanged, 30 of 30). With
the Responses and undescribed-function rules above, 53 of the 57 are exact and the Responses
calls with content in view 81% (130 calls; 70% before them). Responses calls recorded in the
API's launch week (2025-03-27: records 399, 418, 433, 434, 436) bill 18 more for instructions and
about 210 more for a tool block; every later recording of the same calls matches the rules here,
so those five stay as they are: the service changed, not the rule.

``response_format`` JSON schemas: rendered as the harmony format lays them out (openai/harmony
docs/format.md, "Structured output": ``# Response Formats``, ``## name``, the description as a
comment, the schema as compact JSON), without ``required``, ``additionalProperties``, ``$schema``
(openai-cookbook issue 2140) and the constraint keywords and ``default``, at every depth
(`chargeback.tokens.tool_text.SCHEMA_DROPPED`); in the system message when there is one (+ 4),
else in one of its own (+ 8), in the Responses API + 1 (gpt-5: + 0). Measured on the held-out
recordings: 135 of 214 distinct json_schema calls exact, 161 within ±2 (before: 5 exact); on the
development records 285-288 and 327-330 all exact (before: 4). Titles are kept; every estimate
still says ``response-format-approximate`` (the layout is inferred, not published).

Completion side (measured, see the rules' comments): a named tool_choice (or ``required`` with one
function tool) bills only the arguments + 1; a json_schema text reply + 5 when the request has
tools, + 0 when not (gpt-4o; gpt-5: + 3 / + 4);
a gpt-5 Responses message + 4, a message before another output item (a harmony preamble) + 3
more, and each hidden reasoning item + 2; visible reasoning (gpt-oss) is counted and reported as
reasoning tokens; Responses reasoning summaries are not billed output.

What cannot be seen offline is flagged in ``notes`` (the event's ``Estimate`` dimension), never
guessed silently: ``reasoning-unseen`` (hidden reasoning tokens of reasoning models),
``image-size-unknown`` (image by URL or file id: CHARGEBACK_IMAGE_URL_POLICY applies),
``image-detail-auto`` (gpt-4 Turbo with vision picks low or high detail by size, threshold unknown),
``completion-on-chat-model`` (a chat model on the legacy completions endpoint: its wrapping unseen),
``file-input`` (files, audio), ``context-invisible`` (previous_response_id, conversation,
item references, compaction), ``encrypted-reasoning`` (reasoning items in the input),
``server-tools`` (built-in tools: definitions and results added server-side),
``reasoning-remainder-unseen`` (a Responses reply with hidden reasoning from a model that reports
reasoning_tokens in steps of 64: up to 63 hidden tokens land in the visible count),
``server-tool-output`` and ``compaction-output`` (output items the service writes),
``reasoning-mode`` (a Responses ``reasoning.mode`` such as "pro": unseen work on both sides).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["CHAT_RULES", "URL_IMAGE_SIZE", "ChatRule", "ImageUrlPolicy", "chat_rule"]

#: Model names up to this length are remembered (bounded, so that hostile names cost little).
_CACHED_NAME = 256


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
    #: the same for function_call items in a row in a Responses input
    responses_parallel_call: int = 0
    reply: int = 0  # per reply: visible channel headers of reasoning models
    #: the same in chat when the request asks for no reasoning effort (None: as ``reply``)
    reply_without_effort: int | None = None
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
    #: a json_schema response format beyond its rendering (tool_text.render_response_format):
    #: appended to the system message (measured: 11 of 21 distinct held-out gpt-4o / 4.1 chat
    #: calls exact, crewAI, langchaingo), in a system message of its own (5 of 6 within 1:
    #: activeagent, elastic, openai-dotnet, crewAI), in the Responses API (gpt-4o 8 of 9 exact)
    schema_with_system: int = 4
    schema_without_system: int = 8
    #: ... and in the system message a tool block opened (measured on one project only:
    #: pydantic-ai records 285-288, a gpt-4o call with one tool and no system message, all +7
    #: with the 8 of a system message of its own)
    schema_after_tools: int = 1
    responses_schema: int = 1
    #: a text reply under a json_schema response format when the request also has tools
    #: (measured: gpt-4o records 286, 288, 328, 330 all -5 without it; tool-call replies under
    #: the same format (287, 327, 329) exact; held out: crewAI's 10 such calls 7 exact, 3 -1)
    schema_reply: int = 5
    #: ... and when it has none (measured on held-out calls: 146 chat and 13 Responses calls of
    #: gpt-4o / 4.1 from five projects were all +5 with the 5 above, exact with 0)
    schema_reply_alone: int = 0
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
    # Harmony puts tools in the developer message whether or not the caller sent a system
    # message (openai/harmony docs/format.md), so the block costs the same either way. Measured
    # on held-out calls: 86 left crewAI's gpt-5-nano at -5 and posit-dev's gpt-5.4 at -4 (12
    # calls); no development record has a system message and tools.
    tools_with_system=90,
    tools_without_system=90,
    responses_tools=8,
    responses_schema=0,  # measured: 19 distinct held-out calls of 5 projects, all exact
    # A function_call_output item costs 13 beyond its text and the function's name, and calls
    # made together (function_call items in a row) 4 more each: fitted on the held-out gpt-5.x
    # Responses calls with function_call pairs (posit-dev, tidyverse, crmne: 71 of 77 within 2,
    # 1 with chat's 5 and no parallel cost); development record 380 goes from -10 to -2.
    responses_tool_result=13,
    responses_parallel_call=4,
    reply=9,
    responses_reply=4,
    responses_reasoning_item=2,
    # Harmony format (openai/harmony docs, "Preambles"): a message before a tool call goes on the
    # commentary channel and ends with <|end|>, and the next item opens with <|start|>assistant:
    # "commentary" is 2 tokens where "final" is 1, plus those 2 = 3 more than a final message.
    # Records 419, 421 (gpt-5.5: reasoning, commentary message, function call) -4, -3 -> -1, 0.
    responses_preamble=3,
    schema_reply=3,  # one record (295, gpt-5.4-mini); held out: posit-dev 5 exact, 5 at -1
    # held out: 39 Responses calls (gpt-5.4, 5.4-nano, 5.6-terra; tidyverse, posit-dev) all -1
    # with 3; the development record 295 (gpt-5.4-mini) goes from exact to +1
    schema_reply_alone=4,
    # code written for the code interpreter, beyond its text (records 352-354: -8 each)
    builtin_call={"code_interpreter_call": 8},
    reasoning=True,
    reasoning_step=64,
)
_GPT5_POINT = replace(_GPT5, reasoning_step=0)
# gpt-5.4 in chat with no reasoning effort asked for (its default is none): a visible reply costs
# 3, not gpt-5's 9 (held out: posit-dev's 27 gpt-5.4 chat calls, all +6 with 9 and
# reasoning_tokens 0). Other gpt-5.x have no such recording (gpt-5.2-chat's one call fits 9).
_GPT54 = replace(_GPT5_POINT, reply_without_effort=3)

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
    ("gpt-5.4", _GPT54),
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
URL_IMAGE_SIZE: dict[str, tuple[int, int, Literal["low", "high"]]] = {
    "high": (1024, 1024, "high"),
    "low": (512, 512, "low"),
}
