"""Decoding JSON cut short: every prefix of a real message."""

from __future__ import annotations

import json

import pytest

from chargeback.gateway.jsontext import MAX_DEPTH, loads_prefix

MESSAGE = {
    "version": 1,
    "requestId": "r1",
    "n": 12345,
    "ok": True,
    "none": None,
    "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    "arr": [1, 2, {"x": "y"}],
    "requestBody": '{"messages":[{"role":"user","content":"h\\u00e9llo \\"x\\" \\\\ end \\ud83d\\ude00"}]}',
}


def test_every_prefix_is_a_consistent_part_of_the_message() -> None:
    text = json.dumps(MESSAGE)
    for cut in range(1, len(text) + 1):
        value, truncated, last_cut = loads_prefix(text[:cut])
        assert isinstance(value, dict)
        assert truncated == (cut < len(text))
        members = list(value.items())
        for position, (key, got) in enumerate(members):
            sent = MESSAGE[key]
            if position < len(members) - 1 or not last_cut:
                assert got == sent, (cut, key)  # every member but a cut last one is whole
            elif isinstance(sent, str):
                assert sent.startswith(got), (cut, key)


def test_whole_json_is_not_truncated() -> None:
    assert loads_prefix('{"a": [1, 2]}') == ({"a": [1, 2]}, False, False)


def test_a_cut_number_is_left_out() -> None:
    # "12" may be the start of "123": only a delimiter proves a number complete.
    assert loads_prefix('{"a": 1, "b": 12') == ({"a": 1}, True, False)


@pytest.mark.parametrize("text", ["", "x", "]", "{]", '"just a string'])
def test_non_prefixes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        loads_prefix(text)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_prefix("[" * (MAX_DEPTH + 1))
