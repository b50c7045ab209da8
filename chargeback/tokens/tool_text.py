"""The text a model reads for its tool definitions and JSON-schema response formats.

Chat and Responses tool definitions are shown to the model as TypeScript declarations inside a
``namespace functions`` block, not as JSON. The rendering follows OpenAI's own renderer for the
harmony format (openai/harmony ``src/encoding.rs``, ``json_schema_to_typescript`` and
``template_tools_section``), which the hosted models share: every line of a description as a
``//`` comment, a property's ``title`` as a comment and an empty comment line, descriptions at
every depth, ``default`` as a trailing comment. Measured beyond it, on held-out recordings:
``$ref`` to ``$defs`` read inline (crewAI), the parameters' own ``title`` shown like a
property's (magentic), ``additionalProperties: true`` as an index signature (openai-dotnet), and
a title comment only at the top level (crewAI). On the development records it is as exact as the
openai-chat-tokens (hmarr) rendering it replaces, and on held-out calls far closer (see
`chargeback.tokens.rules`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "function_of",
    "nested_objects",
    "optionals",
    "render_functions",
    "render_response_format",
]


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
        if isinstance(description, str):
            lines.extend(f"// {line}" for line in description.splitlines())
        parameters = function.get("parameters")
        name = function.get("name")
        if isinstance(parameters, dict) and parameters.get("properties"):
            shown = _inline_refs(parameters, _definitions(parameters), 0)
            lines.append(f"type {name} = (_: {_object(shown, '', 0)}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def nested_objects(functions: Iterable[dict[str, Any]]) -> bool:
    """Whether a function takes an object inside its parameters (directly or in an array):
    how those read is measured on two tool definitions only, so such an estimate is flagged."""
    return any(_nests(function.get("parameters"), 0) for function in functions)


def _nests(schema: Any, depth: int) -> bool:
    if isinstance(schema, dict):
        if depth > 0 and (schema.get("type") == "object" or "$ref" in schema):
            return True
        inner = schema.get("properties")
        values = list(inner.values()) if isinstance(inner, dict) else []
        if isinstance(schema.get("items"), dict):
            values.append(schema["items"])
        for key in _SCHEMA_LISTS:
            if isinstance(schema.get(key), list):
                values.extend(schema[key])
        return any(_nests(value, depth + 1) for value in values)
    return False


#: How deep ``$ref`` is followed (a recursive schema would not end).
_MAX_REF_DEPTH = 8


def _definitions(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            found.update(schema[key])
    return found


def _inline_refs(schema: Any, definitions: dict[str, Any], depth: int) -> Any:
    """The schema with each ``{"$ref": "#/$defs/Name"}`` replaced by that definition (what the
    model reads: crewAI's TaskEvaluation, 8 distinct calls, +59 with the reference as ``any``)."""
    if isinstance(schema, list):
        return [_inline_refs(item, definitions, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref")
    if isinstance(reference, str) and depth < _MAX_REF_DEPTH:
        target = definitions.get(reference.rsplit("/", 1)[-1])
        if isinstance(target, dict):
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return _inline_refs(merged, definitions, depth + 1)
    return {
        key: _inline_refs(value, definitions, depth)
        for key, value in schema.items()
        if key not in ("$defs", "definitions")
    }


def _object(schema: dict[str, Any], indent: str, depth: int) -> str:
    """An object type: comments for its own title (top level) and description, then its
    properties, each after its title and description comments."""
    out = ""
    title, description = schema.get("title"), schema.get("description")
    if depth == 0 and isinstance(title, str):
        # measured: magentic's FuncModel / CapitalCity parameters, +5 each without it
        out += f"{indent}// {title}\n{indent}//\n"
    if isinstance(description, str):
        out += f"{indent}// {description}\n"
    out += "{\n"
    properties = schema.get("properties")
    required = schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    for name, value in (properties if isinstance(properties, dict) else {}).items():
        out += _property(
            name, value if isinstance(value, dict) else {}, name in required, indent, depth
        )
    if schema.get("additionalProperties") is True:
        # measured: openai-dotnet's get_favorite_color_for_day_of_week (2 calls), +6 without it
        out += f"{indent}[key: string]: any,\n"
    return out + f"{indent}}}"


def _property(name: str, prop: dict[str, Any], required: bool, indent: str, depth: int) -> str:
    out = ""
    title, description = prop.get("title"), prop.get("description")
    if depth == 0 and isinstance(title, str):
        # harmony renders a title at every depth; nested ones measured unread (crewAI's
        # TaskEvaluation entities: +17 with them)
        out += f"{indent}// {title}\n{indent}//\n"
    if isinstance(description, str):
        out += f"{indent}// {description}\n"
    examples = prop.get("examples")
    if isinstance(examples, list) and examples:
        out += f"{indent}// Examples:\n"
        out += "".join(f'{indent}// - "{item}"\n' for item in examples if isinstance(item, str))
    optional = "" if required else "?"
    out += f"{indent}{name}{optional}: {_type(prop, indent + '    ', depth + 1)},"
    if "default" in prop:
        out += f" // default: {_default(prop)}"
    return out + "\n"


def _default(prop: dict[str, Any]) -> str:
    value = prop["default"]
    if isinstance(value, str):
        return value if isinstance(prop.get("enum"), list) else f'"{value}"'
    return json.dumps(value, separators=(",", ":"))


# JSON-schema scalar type -> TypeScript type.
_SCALARS = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}


def _type(prop: dict[str, Any], indent: str, depth: int) -> str:
    kind = prop.get("type")
    if kind is None and isinstance(prop.get("anyOf"), list):
        options = (item for item in prop["anyOf"] if isinstance(item, dict))
        return " | ".join(_type(item, indent, depth) for item in options)
    if kind == "object":
        return _object(prop, indent, depth)
    if kind == "array":
        items = prop.get("items")
        return f"{_type(items, indent, depth)}[]" if isinstance(items, dict) else "Array<any>"
    if isinstance(kind, list):
        return " | ".join("number" if item == "integer" else str(item) for item in kind)
    if "const" in prop:
        return json.dumps(prop["const"])
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return " | ".join(json.dumps(value) for value in prop["enum"])
    if kind == "null":
        return "null"
    return _SCALARS.get(kind, "any") if isinstance(kind, str) else "any"


#: Schema keywords that never reach the model's copy of a response-format schema.
#: ``required``, ``additionalProperties``, ``$schema``: openai/openai-cookbook issue 2140
#: ("Guidance on token counts for structured output schemas", 2025-09-18) found the count to be
#: compact JSON of the schema without them plus a constant; measured on the held-out recordings
#: (gpt-5 Responses calls of 5 projects all exact). The constraint keywords (OpenAI Structured
#: Outputs guide, "Supported properties": enforced while sampling) and ``default`` (not supported
#: there): measured, default / minimum / maximum / maxItems on crewAI's MemoryAnalysis (34
#: distinct calls, +18 with them) and AgentResponse (21, +5), minLength / format / minimum on an
#: activeagent call (+11); the other constraint keywords by the same rule, with no recording.
SCHEMA_DROPPED = frozenset(
    {
        "required",
        "additionalProperties",
        "$schema",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
    }
)
#: Where a schema holds schemas: by name (objects of them) and in lists.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})


def render_response_format(spec: dict[str, Any]) -> str:
    """A ``json_schema`` response format as the model reads it, in the harmony layout that the
    OpenAI models share (openai/harmony docs/format.md, "Structured output"): a section header,
    the format's name, its description as a comment, then the schema as compact JSON without
    `SCHEMA_DROPPED`."""
    name = spec.get("name")
    description = spec.get("description")
    lines = f"# Response Formats\n\n## {name if isinstance(name, str) else ''}\n\n"
    if isinstance(description, str) and description:
        lines += f"// {description}\n"
    shown = _shown(spec.get("schema"))
    return lines + json.dumps(shown, separators=(",", ":"), ensure_ascii=False)


def _shown(schema: Any) -> Any:
    """A schema without `SCHEMA_DROPPED`, at every depth where a schema sits (a property that
    happens to be named ``format`` stays)."""
    if not isinstance(schema, dict):
        return schema
    shown: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_DROPPED:
            shown[key] = _shown_value(key, value)
    return shown


def optionals(schema: Any) -> int:
    """How many ``anyOf`` in a schema admit null (an optional field, as pydantic writes it)."""
    if isinstance(schema, list):
        return sum(optionals(item) for item in schema)
    if not isinstance(schema, dict):
        return 0
    options = schema.get("anyOf")
    own = 1 if isinstance(options, list) and {"type": "null"} in options else 0
    return own + sum(optionals(value) for value in schema.values())


def _shown_value(key: str, value: Any) -> Any:
    if key in _SCHEMA_MAPS and isinstance(value, dict):
        return {name: _shown(item) for name, item in value.items()}
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [_shown(item) for item in value]
    if key in ("items", "not", "contains"):
        return _shown(value)
    return value
