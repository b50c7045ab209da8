"""Stage 3: the OpenAI request and response bodies of a call, as one `Exchange`.

Handles the four billable operations (chat completions, legacy completions, embeddings, the
Responses API), as JSON and as server-sent events, including Azure's stream quirks: a first chunk
with empty ``choices`` and ``prompt_filter_results``, content-filter chunks with no delta,
``"usage": null`` on every chunk, a last chunk with the usage when
``stream_options.include_usage`` is set, CRLF line ends, and streams cut short.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from chargeback.gateway import jsontext
from chargeback.gateway.message import GatewayCall

__all__ = [
    "Choice",
    "Exchange",
    "Operation",
    "parse_exchange",
    "response_cut",
    "route",
]

Operation = Literal["chat.completion", "text_completion", "embeddings", "responses"]

# Path ending -> operation, longest first, so "chat/completions" wins over "completions".
# Source: Azure OpenAI REST reference (classic /openai/deployments/{d}/... and the v1 API
# /openai/v1/...), and the OpenAI API reference for the same paths under /v1.
_OPERATIONS: tuple[tuple[str, Operation], ...] = (
    ("/chat/completions", "chat.completion"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
)

# APIM operation ids and names (the usage-only and bodies shapes carry no URL).
_OPERATION_IDS: dict[str, Operation] = {
    "chatcompletions_create": "chat.completion",
    "chat.completion": "chat.completion",
    "completions_create": "text_completion",
    "text_completion": "text_completion",
    "embeddings_create": "embeddings",
    "embeddings": "embeddings",
    "responses_create": "responses",
    "createresponse": "responses",
    "responses": "responses",
}

# The "object" field of a response body or its first stream chunk.
_RESPONSE_OBJECTS: dict[str, Operation] = {
    "chat.completion": "chat.completion",
    "chat.completion.chunk": "chat.completion",
    "text_completion": "text_completion",
    "list": "embeddings",
    "response": "responses",
}

_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")


@dataclass(frozen=True, slots=True)
class Route:
    """What the URL says: the operation, the deployment (classic form) and the api-version."""

    operation: Operation | None
    deployment: str | None
    api_version: str | None


@functools.lru_cache(maxsize=1024)  # a gateway serves few distinct URLs
def route(url: str | None) -> Route:
    """Read operation, deployment and api-version from a gateway URL."""
    if not url:
        return Route(None, None, None)
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    operation = next((op for suffix, op in _OPERATIONS if path.endswith(suffix)), None)
    match = _DEPLOYMENT.search(path + "/")
    deployment = unquote(match.group(1)) if match else None
    versions = parse_qs(parts.query).get("api-version")
    return Route(operation, deployment, versions[0] if versions else None)


@dataclass(slots=True)
class Choice:
    """What the model wrote in one choice (or one Responses output): the text the tokenizer
    must count when the API did not report usage."""

    text: list[str] = field(default_factory=list)
    # (name, arguments) of each tool or function call.
    tool_calls: list[list[str]] = field(default_factory=list)
    #: Reasoning the body shows as text (gpt-oss ``reasoning``/``reasoning_content``, Responses
    #: ``reasoning_text`` parts); summaries are written by another model and are not here.
    reasoning: list[str] = field(default_factory=list)
    #: Responses ``reasoning`` items whose text is not shown (encrypted or summary only).
    hidden_reasoning: int = 0
    #: (item type, what the model wrote) of each built-in tool call in a Responses output:
    #: a web or file search's queries, code interpreter code, an MCP call's name and arguments.
    builtin_calls: list[list[str]] = field(default_factory=list)


@dataclass(slots=True)
class Exchange:
    """A call's bodies, parsed once."""

    operation: Operation | None
    deployment: str | None
    api_version: str | None
    stream: bool = False
    request: dict[str, Any] | None = None
    response_model: str | None = None
    #: The ``usage`` object exactly as the API wrote it (chat or Responses form), if any.
    usage: dict[str, Any] | None = None
    choices: dict[int, Choice] = field(default_factory=dict)
    request_truncated: bool = False
    response_truncated: bool = False
    #: Notes on what could not be read, for the event (never content).
    notes: list[str] = field(default_factory=list)
    #: A Responses stream reached its terminal event (it has no [DONE] line).
    responses_finished: bool = False

    def choice(self, index: int) -> Choice:
        found = self.choices.get(index)
        if found is None:
            found = self.choices[index] = Choice()
        return found


def parse_exchange(call: GatewayCall, *, texts: bool = True, response: bool = True) -> Exchange:
    """Parse the bodies of a call. Never raises on bad bodies: it notes what it could not read.

    With ``texts=False`` (the call's usage is already known, so nothing will be counted) what
    the model wrote is not collected: ``choices`` stays empty; everything else is the same.

    With ``response=False`` as well (the gateway message carries the usage and the model, so
    nothing the response holds is needed) the response body is not decoded when a look at it
    tells what the event needs of it, whether it streams and whether it was cut short
    (`response_cut`, the same answer the full read gives); then ``response_model``, ``usage``
    and the response's notes stay unset. When the look cannot tell, or the operation is still
    unknown after the URL and the operation id, the response is read as with ``texts=False``.
    """
    where = route(call.url)
    exchange = Exchange(where.operation, where.deployment, where.api_version)
    exchange.request = _parse_request(call.request_body, exchange)
    if exchange.operation is None:
        exchange.operation = _operation_from_id(call.operation_id)
    if exchange.request is not None:
        exchange.stream = exchange.request.get("stream") is True
        if exchange.deployment is None and isinstance(exchange.request.get("model"), str):
            # The v1 API (/openai/v1/...) names the deployment in the body's "model".
            exchange.deployment = exchange.request["model"]
    body = call.response_body
    if body:
        content_type = call.response_content_type
        if response or exchange.operation is None:
            _parse_response(body, content_type, exchange, texts and response)
        else:
            stream = _is_stream(body, content_type)
            cut = response_cut(body, stream)
            if cut is None:
                _parse_response(body, content_type, exchange, False)
            else:
                exchange.stream = exchange.stream or stream
                exchange.response_truncated = cut
    if exchange.operation is None:
        exchange.operation = _operation_from_request(exchange.request)
    return exchange


def _operation_from_id(operation_id: str | None) -> Operation | None:
    if not operation_id:
        return None
    return _OPERATION_IDS.get(operation_id.strip().lower())


def _operation_from_request(request: dict[str, Any] | None) -> Operation | None:
    if request is None:
        return None
    if "messages" in request:
        return "chat.completion"
    if "prompt" in request:
        return "text_completion"
    if "input" in request:
        # Embeddings and Responses both take "input"; only Responses has these.
        responses_only = ("instructions", "tools", "previous_response_id", "reasoning", "text")
        return "responses" if any(k in request for k in responses_only) else "embeddings"
    return None


#: Members whose cut-short value still counts (text arrived, more was cut). Any other member
#: cut short (a model name, a usage object) is not what was sent, and is dropped.
_CONTENT = frozenset({"messages", "input", "prompt", "instructions", "choices", "output", "data"})


def _drop_cut_member(value: dict[str, Any], last_cut: bool) -> None:
    if last_cut and value and next(reversed(value)) not in _CONTENT:
        value.popitem()


def _parse_request(body: str | None, exchange: Exchange) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value, truncated, last_cut = jsontext.loads_prefix(body)
    except (ValueError, RecursionError):
        exchange.notes.append("request-unreadable")
        return None
    exchange.request_truncated = truncated
    if not isinstance(value, dict):
        exchange.notes.append("request-unreadable")
        return None
    _drop_cut_member(value, last_cut)
    return value


def _is_stream(body: str, content_type: str | None) -> bool:
    if content_type and "event-stream" in content_type.lower():
        return True
    head = body.lstrip()[:6]
    return head.startswith(("data:", "event:"))


def _parse_response(
    body: str, content_type: str | None, exchange: Exchange, texts: bool = True
) -> None:
    if _is_stream(body, content_type):
        exchange.stream = True
        _parse_stream(body, exchange, _read_chunk if texts else _read_chunk_meta)
        return
    try:
        value, truncated, last_cut = jsontext.loads_prefix(body)
    except (ValueError, RecursionError):
        exchange.notes.append("response-unreadable")
        return
    exchange.response_truncated = truncated
    if isinstance(value, dict):
        _drop_cut_member(value, last_cut)
        _read_response_object(value, exchange, texts)


# --- Whether a response was cut, without decoding it ---------------------------------------


def response_cut(body: str, stream: bool) -> bool | None:
    """Whether reading ``body`` (a stream, or JSON, as `_is_stream` says) would find it cut
    short (``response_truncated``), told from a few searches instead of a decode; None when
    they cannot tell, and only the full read can.

    - A stream was not cut when it has a ``data: [DONE]`` line (the read stops there), or when
      it ends with a line break and its last ``data:`` line is a Responses terminal event
      (``response.completed``, ``.incomplete`` or ``.failed`` with its ``response`` object); it
      was cut when it holds neither ``[DONE]`` nor any terminal event's name (and no ``\\u``
      escape that could spell one).
    - JSON that opens an object or array and does not end with a bracket or white space was
      cut. One that does end so may still be cut (right after an inner ``}``): None.

    The JSON rule is exact for any prefix of valid JSON, which is what a gateway cut leaves
    (and the policy copies ``usage`` only from a response it could parse); for a body that is
    not even a valid prefix the full read says unreadable, not cut.
    """
    if not stream:
        return True if jsontext.cut_container(body) else None
    done = body.rfind("[DONE]")
    if done >= 0:
        return False if _done_line(body, done) else None
    last = _last_data_line(body)
    if last is not None:
        return last
    if "\\u" in body or any(name in body for name in _RESPONSES_END):
        return None
    return True


#: A ``data: [DONE]`` line, as `_read_lines` reads it (white space other than spaces and tabs
#: could be a line break to `str.splitlines`: left to the full read).
_DONE_LINE = re.compile(r"data:[ \t]*\[DONE\][ \t]*")
#: What `str.splitlines` breaks a line at, besides ``\n``.
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _done_line(body: str, position: int) -> bool:
    """Whether the ``[DONE]`` at ``position`` is on a line of its own that reads ``data: [DONE]``,
    which the full read always reaches and stops at."""
    start = body.rfind("\n", 0, position) + 1
    end = position + 6
    while end < len(body) and body[end] in " \t":
        end += 1
    if end < len(body) and body[end] not in "\r\n":
        return False
    return _DONE_LINE.fullmatch(body, start, end) is not None


def _last_data_line(body: str) -> bool | None:
    """What the full read makes of the last ``data:`` line of a stream with no ``[DONE]``, which
    it always reads: False (not cut) when the line is a Responses terminal event with its
    ``response`` object; True (cut) when it is the body's unfinished last line and does not
    decode; None otherwise."""
    start = body.rfind("\ndata:") + 1
    if start == 0 and not body.startswith("data:"):
        return None
    end = body.find("\n", start)
    unfinished = end < 0
    if unfinished:
        end = len(body)
    elif end > start and body[end - 1] == "\r":  # a CRLF line end
        end -= 1
    if _OTHER_LINE_BREAKS.search(body, start, end):
        return None
    try:
        event = jsontext.loads(body[start + 5 : end])
    except ValueError:
        # `_read_lines` takes an unfinished last line that does not decode for the cut.
        return True if unfinished else None
    if (
        type(event) is dict
        and event.get("type") in _RESPONSES_END
        and isinstance(event.get("response"), dict)
    ):
        return False
    return None


# --- Whole JSON responses -------------------------------------------------------------------


def _read_response_object(body: dict[str, Any], exchange: Exchange, texts: bool = True) -> None:
    kind = body.get("object")
    if exchange.operation is None and isinstance(kind, str):
        exchange.operation = _RESPONSE_OBJECTS.get(kind)
    _take_model(body.get("model"), exchange)
    if isinstance(body.get("usage"), dict):
        exchange.usage = body["usage"]
    if not texts:
        return
    if kind == "response" or exchange.operation == "responses":
        _read_response_output(body.get("output"), exchange)
        return
    for position, choice in enumerate(_list(body.get("choices"))):
        if not isinstance(choice, dict):
            continue
        target = exchange.choice(_index(choice, position))
        if isinstance(choice.get("text"), str):
            target.text.append(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            _read_message_delta(message, target)


def _read_response_output(output: Any, exchange: Exchange) -> None:
    for position, item in enumerate(_list(output)):
        if not isinstance(item, dict):
            continue
        target = exchange.choice(position)
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments", item.get("input"))
            target.tool_calls.append([_str(item.get("name")), _str(arguments)])
            continue
        if kind == "reasoning":
            texts = [p["text"] for p in _list(item.get("content")) if _has_text(p)]
            target.reasoning.extend(texts)
            if not texts:
                target.hidden_reasoning += 1
            continue
        if isinstance(kind, str) and (kind.endswith("_call") or kind == "compaction"):
            target.builtin_calls.append([kind, _builtin_text(item)])
            continue
        for part in _list(item.get("content")):
            if _has_text(part):
                target.text.append(part["text"])


def _has_text(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("text"), str)


def _builtin_text(item: dict[str, Any]) -> str:
    """What the model itself wrote for a built-in tool call (never what the tool returned)."""
    kind = item.get("type")
    if kind == "code_interpreter_call":
        return _str(item.get("code"))
    if kind == "mcp_call":
        return _str(item.get("name")) + _str(item.get("arguments"))
    if kind == "file_search_call":
        return "\n".join(q for q in _list(item.get("queries")) if isinstance(q, str))
    action = item.get("action")
    if isinstance(action, dict):  # web_search_call, computer_call, local_shell_call, ...
        query = action.get("query")
        if isinstance(query, str):
            return query
        command = action.get("command")
        if isinstance(command, list):
            return " ".join(c for c in command if isinstance(c, str))
    return ""


def _read_message_delta(message: dict[str, Any], target: Choice) -> None:
    for key in ("content", "refusal"):
        if isinstance(message.get(key), str):
            target.text.append(message[key])
    for key in ("reasoning", "reasoning_content"):  # gpt-oss and other open-weight servers
        if isinstance(message.get(key), str):
            target.reasoning.append(message[key])
    for position, call in enumerate(_list(message.get("tool_calls"))):
        if not isinstance(call, dict):
            continue
        slot = _index(call, position)
        while len(target.tool_calls) <= slot:
            target.tool_calls.append(["", ""])
        function = call.get("function")
        if isinstance(function, dict):
            target.tool_calls[slot][0] += _str(function.get("name"))
            target.tool_calls[slot][1] += _str(function.get("arguments"))
    function_call = message.get("function_call")  # the older functions API
    if isinstance(function_call, dict):
        target.tool_calls.append(
            [_str(function_call.get("name")), _str(function_call.get("arguments"))]
        )


# --- Server-sent events ---------------------------------------------------------------------


_ReadChunk = Callable[[dict[str, Any], Exchange], object]


def _parse_stream(body: str, exchange: Exchange, read_chunk: _ReadChunk) -> None:
    fast = _split_stream(body)
    if fast is None:
        done = _read_lines(body, exchange, read_chunk)
    else:
        chunks, done, rest = fast
        if read_chunk is _read_chunk:
            _read_chunks(chunks, exchange)
        else:
            for chunk in chunks:
                if type(chunk) is dict:
                    read_chunk(chunk, exchange)
        if rest and not done:
            done = _read_lines(rest, exchange, read_chunk)
    if not done and not exchange.response_truncated and not exchange.responses_finished:
        exchange.response_truncated = True


def _read_lines(body: str, exchange: Exchange, read_chunk: _ReadChunk) -> bool:
    """Each ``data:`` line on its own. True when the stream's ``[DONE]`` was read."""
    lines = body.splitlines()
    # A body cut mid-line leaves a last line without its end: it cannot be trusted.
    last_complete = len(lines) if body.endswith(("\n", "\r")) else len(lines) - 1
    loads = jsontext.loads
    for number, line in enumerate(lines):
        if not line.startswith("data:"):
            continue
        try:
            # orjson skips the white space around the payload itself.
            chunk = loads(line[5:])
        except ValueError:
            if line[5:].strip() == "[DONE]":
                return True
            if number >= last_complete:
                exchange.response_truncated = True
            else:
                exchange.notes.append("stream-chunk-unreadable")
            continue
        if type(chunk) is dict:
            read_chunk(chunk, exchange)
    return False


_EVENT_LINE = re.compile(r"\nevent:[^\n]*")


def _split_stream(body: str) -> tuple[list[Any], bool, str] | None:
    """The usual layout, decoded in one call instead of one per line: events of one ``data:``
    line (after an ``event:`` line or not), a blank line after each, LF line ends.

    Returns the chunks of the complete events, whether ``[DONE]`` ended them, and the text after
    the last complete event (a cut line, for `_read_lines`); None for any other layout, which
    `_read_lines` then reads line by line with the same result.
    """
    if "\r" in body:
        return None
    # Only a line that starts with "event:" is removed (a search for "\nevent:" is the faster).
    event_lines = body.startswith("event:") or "\nevent:" in body
    text = _EVENT_LINE.sub("", "\n" + body)[1:] if event_lines else body
    end = text.rfind("\n\n") + 2
    if end < 2:
        return [], False, text
    head, rest = text[:end], text[end:]
    last = head.rfind("\n\n", 0, end - 2) + 2
    done = head.startswith("data:", last) and head[last + 5 : end].strip() == "[DONE]"
    if done:
        head, rest = head[:last], ""
    if not head:
        return [], done, rest
    if not head.startswith("data:"):
        return None
    events = head[5:-2]
    joined = events.replace("\n\ndata:", ",")
    try:
        chunks = jsontext.loads("[" + joined + "]")
    except ValueError:
        return None
    if not isinstance(chunks, list):
        return None
    # One chunk per event and no line but the data lines, or the layout was not the usual one.
    # Each event after the first put one comma for 7 characters in `joined`: with no line left
    # in it and as many events as chunks, the count below holds; only otherwise is it made.
    one_each = "\n" not in joined and 6 * (len(chunks) - 1) == len(events) - len(joined)
    if not one_each and head.count("\n") != 2 * len(chunks):
        return None
    return chunks, done, rest


def _read_chunk_meta(chunk: dict[str, Any], exchange: Exchange) -> str | None:
    """What a stream chunk says about the call (operation, model, usage, the end of a Responses
    stream), not what the model wrote. Returns the kind of a Responses event, None for a chat or
    completions chunk."""
    kind = chunk.get("type")
    if kind is not None and isinstance(kind, str) and kind.startswith("response."):
        _read_responses_meta(kind, chunk, exchange)
        return kind
    if exchange.operation is None and isinstance(chunk.get("object"), str):
        exchange.operation = _RESPONSE_OBJECTS.get(chunk["object"])
    if exchange.response_model is None:
        _take_model(chunk.get("model"), exchange)
    usage = chunk.get("usage")
    if usage is not None and isinstance(usage, dict):
        exchange.usage = usage
    return None


def _read_chunk(chunk: dict[str, Any], exchange: Exchange) -> None:
    # Runs once per stream line: the common chunk (one choice, a delta with only "content")
    # takes the fewest steps; anything else goes the general way.
    kind = _read_chunk_meta(chunk, exchange)
    if kind is not None:
        _read_responses_choices(kind, chunk, exchange)
        return
    choices = chunk.get("choices")
    if not choices or type(choices) is not list:
        return
    for position, choice in enumerate(choices):
        if type(choice) is not dict:
            continue
        index = choice.get("index")
        if type(index) is not int or not 0 <= index < _MAX_CHOICES:
            index = position
        target = exchange.choices.get(index) or exchange.choice(index)
        text = choice.get("text")
        if text is not None and isinstance(text, str):
            target.text.append(text)
        delta = choice.get("delta")
        if delta is None or type(delta) is not dict:  # content-filter chunks carry no delta
            continue
        if len(delta) == 1:
            content = delta.get("content")
            if type(content) is str:
                target.text.append(content)
                continue
        _read_message_delta(delta, target)


def _read_chunks(chunks: list[Any], exchange: Exchange) -> None:
    """`_read_chunk` on each chunk, the usual ones (a chat chunk after the model is known: one
    choice, already seen, whose delta holds only its text, or only more of one tool call's
    arguments) in the fewest steps."""
    known = exchange.choices
    for chunk in chunks:
        if type(chunk) is not dict:
            continue
        if exchange.response_model is None or exchange.operation is None or "type" in chunk:
            _read_chunk(chunk, exchange)
            continue
        usage = chunk.get("usage")
        if usage is not None and type(usage) is dict:
            exchange.usage = usage
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            if type(choice) is dict and choice.get("text") is None:
                index, delta = choice.get("index"), choice.get("delta")
                if (
                    type(index) is int
                    and 0 <= index < _MAX_CHOICES
                    and type(delta) is dict
                    and len(delta) == 1
                ):
                    target = known.get(index)
                    if target is not None:
                        content = delta.get("content")
                        if type(content) is str:
                            target.text.append(content)
                            continue
                        calls = delta.get("tool_calls")
                        if (
                            type(calls) is list
                            and len(calls) == 1
                            and _more_of_call(calls[0], target)
                        ):
                            continue
        _read_chunk(chunk, exchange)


def _more_of_call(call: Any, target: Choice) -> bool:
    """`_read_message_delta` of a delta that holds only ``call``, when ``call`` adds to a tool
    call already begun (its index in range, its function an object); False, with nothing done,
    otherwise."""
    if type(call) is not dict:
        return False
    slot, function = call.get("index"), call.get("function")
    if (
        type(slot) is not int
        or not 0 <= slot < _MAX_CHOICES
        or slot >= len(target.tool_calls)
        or type(function) is not dict
    ):
        return False
    pair = target.tool_calls[slot]
    pair[0] += _str(function.get("name"))
    pair[1] += _str(function.get("arguments"))
    return True


_RESPONSES_END = ("response.completed", "response.incomplete", "response.failed")


def _read_responses_meta(kind: str, event: dict[str, Any], exchange: Exchange) -> None:
    exchange.operation = exchange.operation or "responses"
    response = event.get("response")
    if isinstance(response, dict):
        _take_model(response.get("model"), exchange)
        if kind in _RESPONSES_END:
            exchange.responses_finished = True
            if isinstance(response.get("usage"), dict):
                exchange.usage = response["usage"]


def _read_responses_choices(kind: str, event: dict[str, Any], exchange: Exchange) -> None:
    response = event.get("response")
    if isinstance(response, dict):
        if kind in _RESPONSES_END:
            # The final output replaces what the deltas built up.
            exchange.choices.clear()
            _read_response_output(response.get("output"), exchange)
        return
    position = event.get("output_index")
    if not isinstance(position, int) or isinstance(position, bool):
        return
    if kind == "response.output_text.delta":
        exchange.choice(position).text.append(_str(event.get("delta")))
    elif kind == "response.function_call_arguments.delta":
        target = exchange.choice(position)
        if not target.tool_calls:
            target.tool_calls.append(["", ""])
        target.tool_calls[-1][1] += _str(event.get("delta"))
    elif kind == "response.output_item.added":
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            exchange.choice(position).tool_calls.append([_str(item.get("name")), ""])


# --- Small readers that tolerate wrong types ------------------------------------------------


def _take_model(value: Any, exchange: Exchange) -> None:
    # Azure's first stream chunk has "model": "" — keep looking.
    if isinstance(value, str) and value and exchange.response_model is None:
        exchange.response_model = value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


#: Choice and tool-call indexes beyond this are not believed.
_MAX_CHOICES = 1024


def _index(item: dict[str, Any], default: int) -> int:
    value = item.get("index")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_CHOICES:
        return value
    return default
