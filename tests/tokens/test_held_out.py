"""Issue 17, point 2: estimation rules pinned on held-out recorded calls (other projects'
recordings, tests/data/held-out-sample.jsonl; the rules were fitted on tests/data's development
file): structured outputs, tool definitions, images, Responses function calls, stored prompts,
legacy completions and the gpt-5.4 chat reply. Each test names the cassette it reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chargeback.bodies import Exchange, parse_exchange
from chargeback.gateway import parse_gateway_message
from chargeback.receive import RawMessage
from chargeback.tokens import estimate, usage_from_api
from chargeback.tools.accuracy import gateway_message
from tests.support.messages import HELD_OUT


def _recorded(record: dict[str, Any]) -> Exchange:
    """A recorded call as the pipeline parses it, usage stripped."""
    call = parse_gateway_message(RawMessage(gateway_message(record, "t")), max_bytes=10**7)
    exchange = parse_exchange(call)
    assert exchange.usage is None
    return exchange


def _held_out(cassette: str) -> dict[str, Any]:
    """The recorded call of a held-out project's cassette (the file path ends with it)."""
    with HELD_OUT.open(encoding="utf-8") as lines:
        found = [json.loads(line) for line in lines]
    return next(record for record in found if record["file"].endswith(cassette))


def _reported(record: dict[str, Any]) -> tuple[int, int]:
    usage = usage_from_api(record["usage"])
    assert usage is not None
    return usage.prompt, usage.completion - usage.reasoning


@pytest.mark.parametrize(
    ("cassette", "prompt", "completion"),
    [
        # gpt-5.4 Responses: header, name, compact JSON without required and
        # additionalProperties (+ 0), reply + 4 + 4 for the schema
        ("test_chat/test_chat_structured.yaml", 44, 17),
        # gpt-4o Responses: the same + 1; reply + 1, nothing for the schema without tools
        ("structured_output/openai_json_schema.yml", 48, 11),
        # ... minLength, format and minimum are not shown to the model
        ("structured_output/generated_schema.yml", 58, 17),
        # gpt-4o-mini chat, no system message: a system message of its own (+ 8)
        ("response_format_test/test_agent_response_json_schema_implicit.yml", 49, 10),
        # gpt-4o-mini chat, appended to the system message (+ 4), titles kept
        ("utilities/test_convert_with_instructions.yaml", 108, 9),
        # gpt-4o chat, additionalProperties inside properties and items dropped too
        ("TestStructuredOutputObjectSchema.httprr", 53, 6),
        # gpt-4o-mini: default, minimum, maximum dropped; an unused $defs block stays
        ("test_crew_memory_with_google_vertex_embedder.yaml", 543, 50),
        # gpt-4.1-mini: maxItems dropped, const kept
        ("test_agent_kickoff_delegates_to_a2a.yaml", 274, 40),
    ],
)
def test_held_out_structured_outputs(cassette: str, prompt: int, completion: int) -> None:
    record = _held_out(cassette)
    assert _reported(record) == (prompt, completion)
    counts = estimate(_recorded(record), record["model"])
    assert (counts.prompt, counts.completion) == (prompt, completion)
    assert "response-format-approximate" in counts.notes


@pytest.mark.parametrize(
    ("cassette", "prompt"),
    [
        # crewAI, gpt-4o-mini: two optional fields (anyOf with null), 3 more each than their JSON
        ("test_agent_kickoff_with_planning_stores_plan_in_state.yaml", 788),
        # crewAI, gpt-4.1-mini: one optional field
        ("test_after_kickoff_modification.yaml", 377),
    ],
)
def test_held_out_optional_fields_of_a_schema(cassette: str, prompt: int) -> None:
    record = _held_out(cassette)
    assert _reported(record)[0] == prompt
    assert estimate(_recorded(record), record["model"]).prompt == prompt


@pytest.mark.parametrize(
    ("cassette", "prompt"),
    [
        # magentic, gpt-4o: a titled property ("// Name" and an empty comment line), no
        # description, tool_choice naming the function (7 + its name)
        ("test_async_decorator_max_retries.yaml", 53),
        # crewAI, gpt-4.1-mini: a described function, a titled property, a system message
        ("test_before_hook_blocks_tool_execution_in_crew.yaml", 133),
        # openai-dotnet, gpt-4o: additionalProperties true reads as an index signature
        ("StructuredOutputs(WithSchema,NotStrict).json", 95),
        # posit-dev, gpt-5.4: the harmony tool block costs 90 with a system message too
        ("test_provider_openai_completions/test_openai_tool_variations.yaml", 147),
        # crewAI, gpt-4.1-mini: a tool result that carries the function's name bills it once
        ("test_agent_custom_max_iterations.yaml", 142),
    ],
)
def test_held_out_tool_definitions(cassette: str, prompt: int) -> None:
    record = _held_out(cassette)
    assert _reported(record)[0] == prompt
    counts = estimate(_recorded(record), record["model"])
    assert counts.prompt == prompt
    assert "tool-schema-approximate" not in counts.notes


def test_held_out_nested_tool_parameters_are_flagged() -> None:
    # crewAI's TaskEvaluation: a $ref to $defs read inline (it was 59 under with the reference as
    # `any`), an array of objects whose reading is measured on two definitions only: flagged
    record = _held_out("test_memory_events_are_emitted.yaml")
    counts = estimate(_recorded(record), record["model"])
    assert (counts.prompt, _reported(record)[0]) == (765, 769)
    assert "tool-schema-approximate" in counts.notes


@pytest.mark.parametrize(
    ("cassette", "prompt"),
    [
        # o4-mini, 640×480 (20×15 = 300 patches): ceil(300 × 1.72) = 516, + 1 around the image
        ("TestAgentMultimodalOpenAI.test_generic_file_image[openai-o4-mini].yaml", 563),
        ("test_image_file[openai-o4-mini-responses].yaml", 563),  # the same in Responses
        # gpt-5.4 is a patch model at 1.2 (not gpt-5's tiles): 60×30, 2 patches, 3 + 1
        ("test_provider_openai_completions/test_openai_images.yaml", 15),
        ("test_provider_openai/test_openai_images.yaml", 19),
        # gpt-4o, 640×480 without detail: high, 85 + 2 tiles × 170
        ("TestAgentMultimodalOpenAI.test_generic_file_image[openai-gpt-4o].yaml", 472),
    ],
)
def test_held_out_images(cassette: str, prompt: int) -> None:
    record = _held_out(cassette)
    assert _reported(record)[0] == prompt
    assert estimate(_recorded(record), record["model"]).prompt == prompt


def test_gpt4_turbo_vision_auto_detail_is_flagged() -> None:
    # Azure OpenAI "Use vision-enabled chat models", detail parameter settings: with auto (the
    # default) "the model decides between low or high based on the size of the image input".
    # No recording of such a model: the held-out gpt-4o call's image, estimated for it.
    record = _held_out("TestAgentMultimodalOpenAI.test_generic_file_image[openai-gpt-4o].yaml")
    turbo = estimate(_recorded(record), "gpt-4-turbo-2024-04-09")
    assert "image-detail-auto" in turbo.notes
    assert "image-detail-auto" not in estimate(_recorded(record), record["model"]).notes
    high = json.loads(json.dumps(record))
    for message in high["request"]["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url":
                part["image_url"]["detail"] = "high"
    explicit = estimate(_recorded(high), "gpt-4-turbo-2024-04-09")
    assert explicit.prompt == turbo.prompt and "image-detail-auto" not in explicit.notes


@pytest.mark.parametrize(
    ("cassette", "prompt"),
    [
        # gpt-5.4 Responses: two function calls made together, then their outputs: each output
        # item 13 beyond its text and the function's name, each call of the pair 4 more
        ("test_chat/test_chat_callbacks.yaml", 123),
        # ... one call and its output
        ("test_mcp_client/test_call_http_mcp_tool.yaml", 91),
    ],
)
def test_held_out_gpt5_responses_function_calls(cassette: str, prompt: int) -> None:
    record = _held_out(cassette)
    assert _reported(record)[0] == prompt
    assert estimate(_recorded(record), record["model"]).prompt == prompt


def test_a_stored_prompt_is_flagged() -> None:
    # openai-dotnet, gpt-5.2 Responses with "prompt": {"id": ...}: the stored prompt's text is
    # added server-side (69 billed for a 10-token input)
    record = _held_out("ResponsesTests/MultipleResponseInstructions.json")
    counts = estimate(_recorded(record), record["model"])
    assert counts.prompt < _reported(record)[0] - 50
    assert "context-invisible" in counts.notes


def test_a_legacy_completion_suffix_is_prompt() -> None:
    # envoyproxy, gpt-3.5-turbo-instruct with a suffix (insert mode): prompt 18 + suffix 7
    record = _held_out("completion-suffix.yaml")
    assert _reported(record) == (25, 30)
    counts = estimate(_recorded(record), record["model"])
    assert (counts.prompt, counts.completion) == (25, 30)
    assert "completion-on-chat-model" not in counts.notes


def test_a_chat_model_on_the_completions_endpoint_is_flagged() -> None:
    # No recording: the same call sent to a chat model, whose prompt the service wraps unseen.
    record = _held_out("completion-suffix.yaml")
    counts = estimate(_recorded(record), "gpt-4o-mini")
    assert "completion-on-chat-model" in counts.notes


def test_held_out_gpt54_chat_reply_without_reasoning_effort() -> None:
    # posit-dev, gpt-5.4 chat, no reasoning_effort (its default is none): a reply costs 3
    # beyond its text, not gpt-5's 9 (reasoning_tokens 0)
    record = _held_out("test_provider_openai_completions/test_openai_tool_variations.yaml")
    assert _reported(record) == (147, 13)
    assert estimate(_recorded(record), record["model"]).completion == 13
    asked = json.loads(json.dumps(record))
    asked["request"]["reasoning_effort"] = "medium"  # the same reply with effort asked for
    assert estimate(_recorded(asked), record["model"]).completion == 13 + 6
