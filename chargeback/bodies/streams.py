"""Server-sent events: chat completion chunks and Responses API events, including Azure's stream
quirks (a first chunk with empty ``choices`` and ``prompt_filter_results``, content-filter chunks
with no delta, ``"usage": null`` on every chunk, a last chunk with the usage when
``stream_options.include_usage`` is set, CRLF line ends, streams cut short); and whether a
response was cut, told without decoding it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from chargeback._values import as_str
from chargeback.bodies.exchange import (
    MAX_CHOICES,
    Choice,
    Exchange,
    read_message_delta,
    read_response_output,
    take_model,
)
from chargeback.bodies.routes import RESPONSE_OBJECTS
from chargeback.gateway import jsontext

__all__ = ["is_stream", "parse_stream", "response_cut"]


# --- Whether a response was cut, without decoding it ---------------------------------------


def response_cut(body: str, stream: bool) -> bool | None:
    """Whether reading ``body`` (a stream, or JSON, as `is_stream` says) would find it cut
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


def is_stream(body: str, content_type: str | None) -> bool:
    if content_type and "event-stream" in content_type.lower():
        return True
    head = body.lstrip()[:6]
    return head.startswith(("data:", "event:"))


# --- Server-sent events ---------------------------------------------------------------------


_ReadChunk = Callable[[dict[str, Any], Exchange], object]


def parse_stream(body: str, exchange: Exchange, texts: bool) -> None:
    """Read a stream into ``exchange``; with ``texts=False`` only what is not the model's text
    (the operation, the model, the usage, whether it ended)."""
    read_chunk: _ReadChunk = _read_chunk if texts else _read_chunk_meta
    fast = _split_stream(body)
    if fast is None:
        done = _read_lines(body, exchange, read_chunk)
    else:
        chunks, done, rest = fast
        if texts:
            _read_chunks(chunks, exchange)
        else:
            for chunk in chunks:
                if type(chunk) is dict:
                    read_chunk(chunk, exchange)
        if rest and not done:
            done = _read_lines(rest, exchange, read_chunk)
    if not done and not exchange.response_truncated and not exchange.responses_finished:
        exchange.response_truncated = True
    exchange.settle()


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
        exchange.operation = RESPONSE_OBJECTS.get(chunk["object"])
    if exchange.response_model is None:
        take_model(chunk.get("model"), exchange)
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
        if type(index) is not int or not 0 <= index < MAX_CHOICES:
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
        read_message_delta(delta, target)


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
                    and 0 <= index < MAX_CHOICES
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
    """`read_message_delta` of a delta that holds only ``call``, when ``call`` adds to a tool
    call already begun (its index in range, its function an object); False, with nothing done,
    otherwise."""
    if type(call) is not dict:
        return False
    slot, function = call.get("index"), call.get("function")
    if (
        type(slot) is not int
        or not 0 <= slot < MAX_CHOICES
        or slot >= len(target.tool_calls)
        or type(function) is not dict
    ):
        return False
    target.extend_call(slot, as_str(function.get("name")), as_str(function.get("arguments")))
    return True


_RESPONSES_END = ("response.completed", "response.incomplete", "response.failed")


def _read_responses_meta(kind: str, event: dict[str, Any], exchange: Exchange) -> None:
    exchange.operation = exchange.operation or "responses"
    response = event.get("response")
    if isinstance(response, dict):
        take_model(response.get("model"), exchange)
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
            read_response_output(response.get("output"), exchange)
        return
    position = event.get("output_index")
    if not isinstance(position, int) or isinstance(position, bool):
        return
    if kind == "response.output_text.delta":
        exchange.choice(position).text.append(as_str(event.get("delta")))
    elif kind == "response.function_call_arguments.delta":
        target = exchange.choice(position)
        if not target.tool_calls:
            target.tool_calls.append(["", ""])
        target.extend_call(len(target.tool_calls) - 1, "", as_str(event.get("delta")))
    elif kind == "response.output_item.added":
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            exchange.choice(position).tool_calls.append([as_str(item.get("name")), ""])
