"""`Exchange`: a call's bodies, parsed once; and the readers of what the model wrote, shared by
whole JSON responses and streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chargeback._values import as_list, as_str
from chargeback.bodies.routes import Operation

__all__ = [
    "MAX_CHOICES",
    "Choice",
    "Exchange",
    "choice_index",
    "read_message_delta",
    "read_response_output",
    "take_model",
]


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
    #: Pieces of tool calls' names and arguments (a stream sends them a few characters at a
    #: time), by the call's position in `tool_calls`: appended to a list, joined once by
    #: `settle`. Adding each piece to the string in `tool_calls` would copy the whole string
    #: every time (the list holds a reference, so CPython cannot grow it in place): quadratic.
    pieces: dict[int, tuple[list[str], list[str]]] = field(default_factory=dict)

    def extend_call(self, slot: int, name: str, arguments: str) -> None:
        """More of the name and arguments of the tool call at ``slot`` in `tool_calls`."""
        found = self.pieces.get(slot)
        if found is None:
            found = self.pieces[slot] = ([], [])
        if name:
            found[0].append(name)
        if arguments:
            found[1].append(arguments)

    def settle(self) -> None:
        """Join the pieces into `tool_calls`, once the body is read."""
        for slot, (names, arguments) in self.pieces.items():
            call = self.tool_calls[slot]
            call[0] += "".join(names)
            call[1] += "".join(arguments)
        self.pieces.clear()


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

    def settle(self) -> None:
        """Join every choice's tool-call pieces (`Choice.settle`): the body is read."""
        for choice in self.choices.values():
            if choice.pieces:
                choice.settle()


def read_response_output(output: Any, exchange: Exchange) -> None:
    for position, item in enumerate(as_list(output)):
        if not isinstance(item, dict):
            continue
        target = exchange.choice(position)
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments", item.get("input"))
            target.tool_calls.append([as_str(item.get("name")), as_str(arguments)])
            continue
        if kind == "reasoning":
            texts = [p["text"] for p in as_list(item.get("content")) if _has_text(p)]
            target.reasoning.extend(texts)
            if not texts:
                target.hidden_reasoning += 1
            continue
        if isinstance(kind, str) and (kind.endswith("_call") or kind == "compaction"):
            target.builtin_calls.append([kind, _builtin_text(item)])
            continue
        for part in as_list(item.get("content")):
            if _has_text(part):
                target.text.append(part["text"])


def _has_text(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("text"), str)


def _builtin_text(item: dict[str, Any]) -> str:
    """What the model itself wrote for a built-in tool call (never what the tool returned)."""
    kind = item.get("type")
    if kind == "code_interpreter_call":
        return as_str(item.get("code"))
    if kind == "mcp_call":
        return as_str(item.get("name")) + as_str(item.get("arguments"))
    if kind == "file_search_call":
        return "\n".join(q for q in as_list(item.get("queries")) if isinstance(q, str))
    action = item.get("action")
    if isinstance(action, dict):  # web_search_call, computer_call, local_shell_call, ...
        query = action.get("query")
        if isinstance(query, str):
            return query
        command = action.get("command")
        if isinstance(command, list):
            return " ".join(c for c in command if isinstance(c, str))
    return ""


def read_message_delta(message: dict[str, Any], target: Choice) -> None:
    for key in ("content", "refusal"):
        if isinstance(message.get(key), str):
            target.text.append(message[key])
    for key in ("reasoning", "reasoning_content"):  # gpt-oss and other open-weight servers
        if isinstance(message.get(key), str):
            target.reasoning.append(message[key])
    for position, call in enumerate(as_list(message.get("tool_calls"))):
        if not isinstance(call, dict):
            continue
        slot = choice_index(call, position)
        while len(target.tool_calls) <= slot:
            target.tool_calls.append(["", ""])
        function = call.get("function")
        if isinstance(function, dict):
            target.extend_call(
                slot, as_str(function.get("name")), as_str(function.get("arguments"))
            )
    function_call = message.get("function_call")  # the older functions API
    if isinstance(function_call, dict):
        target.tool_calls.append(
            [as_str(function_call.get("name")), as_str(function_call.get("arguments"))]
        )


def take_model(value: Any, exchange: Exchange) -> None:
    # Azure's first stream chunk has "model": "" — keep looking.
    if isinstance(value, str) and value and exchange.response_model is None:
        exchange.response_model = value


#: Choice and tool-call indexes beyond this are not believed.
MAX_CHOICES = 1024


def choice_index(item: dict[str, Any], default: int) -> int:
    value = item.get("index")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_CHOICES:
        return value
    return default
