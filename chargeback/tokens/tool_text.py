"""The text a model reads for its tool definitions and JSON-schema response formats.

Chat and Responses tool definitions are shown to the model as TypeScript declarations inside a
``namespace functions`` block, not as JSON. The rendering here follows the one that
``openai-chat-tokens`` (hmarr) and LiteLLM's ``token_counter`` use; on the recorded calls it is
closer than the OpenAI cookbook's per-property formula (see
`chargeback.tokens.estimate` for the figures).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["function_of", "render_functions", "render_schema"]


def function_of(tool: Any) -> dict[str, Any] | None:
    """The function definition of a chat tool (``{"type": "function", "function": {...}}``),
    a legacy ``functions`` entry, or a Responses tool (flat ``{"type": "function", "name"...}``).
    None for built-in tools (web search, file search, ...)."""
    if not isinstance(tool, dict):
        return None
    inner = tool.get("function")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return inner
    if tool.get("type", "function") == "function" and isinstance(tool.get("name"), str):
        return tool
    return None


def render_functions(functions: Iterable[dict[str, Any]]) -> str:
    lines = ["namespace functions {", ""]
    for function in functions:
        description = function.get("description")
        if isinstance(description, str) and description:
            lines.append(f"// {description}")
        parameters = function.get("parameters")
        name = function.get("name")
        if isinstance(parameters, dict) and parameters.get("properties"):
            lines.append(f"type {name} = (_: {{")
            lines.append(_properties(parameters, 0))
            lines.append("}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _properties(schema: dict[str, Any], indent: int) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return ""
    required = schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    pad = " " * indent
    lines = []
    for name, value in properties.items():
        prop = value if isinstance(value, dict) else {}
        description = prop.get("description")
        if isinstance(description, str) and description and indent < 2:
            lines.append(f"{pad}// {description}")
        optional = "" if name in required else "?"
        lines.append(f"{pad}{name}{optional}: {_type(prop, indent)},")
    return "\n".join(lines)


# JSON-schema scalar type -> TypeScript type.
_SCALARS = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}


def _type(prop: dict[str, Any], indent: int) -> str:
    if isinstance(prop.get("anyOf"), list):
        return " | ".join(_type(item, indent) for item in prop["anyOf"] if isinstance(item, dict))
    if "const" in prop:
        return json.dumps(prop["const"])
    if isinstance(prop.get("enum"), list):
        return " | ".join(json.dumps(value) for value in prop["enum"])
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_type({**prop, "type": item}, indent) for item in kind)
    if kind == "array":
        items = prop.get("items")
        return f"{_type(items, indent)}[]" if isinstance(items, dict) else "any[]"
    if kind == "object":
        return "{\n" + _properties(prop, indent + 2) + "\n" + " " * indent + "}"
    if kind == "null":
        return "null"
    return _SCALARS.get(kind, "any") if isinstance(kind, str) else "any"


def render_schema(schema: Any) -> str:
    """A ``response_format`` JSON schema as the model reads it: compact JSON without
    ``additionalProperties`` (an approximation; see `chargeback.tokens.estimate`)."""
    return json.dumps(_without_additional(schema), separators=(",", ":"), ensure_ascii=False)


def _without_additional(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_additional(item)
            for key, item in value.items()
            if key != "additionalProperties"
        }
    if isinstance(value, list):
        return [_without_additional(item) for item in value]
    return value
