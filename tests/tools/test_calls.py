"""Reply parsers read tool calls in each format, never raise, and round-trip what they format."""

from __future__ import annotations

import pytest

from palaestra.tools import TOOL_PARSERS, ToolCall, format_tool_calls, get_tool_parser, register_tool_parser
from palaestra.tools.calls import HermesParser
from palaestra.tools.schema import function_tool, tools_prompt, validate_arguments

SEARCH = ToolCall("search", {"query": "capital of Wurzel"}, "call_0")


def test_hermes_reads_several_calls_and_the_text_around_them():
    text = (
        "Let me look.\n<tool_call>\n"
        '{"name": "search", "arguments": {"query": "capital of Wurzel"}}\n</tool_call>\n'
        '<tool_call>{"name": "open", "arguments": "{\\"doc_id\\": 3}"}</tool_call>'
    )
    parsed = get_tool_parser("hermes").parse(text)
    assert parsed.error is None and parsed.content == "Let me look."
    assert parsed.calls == (SEARCH, ToolCall("open", {"doc_id": 3}, "call_1"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<tool_call>{not json}</tool_call>", "invalid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'needs a "name"'),
        ('<tool_call>{"name": "s", "arguments": [1]}</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "s", "arguments": {}}', "never closed"),
        ("<tool_call>[1, 2]</tool_call>", "must be a JSON object"),
    ],
)
def test_malformed_hermes_calls_are_errors_not_exceptions(text, error):
    parsed = get_tool_parser("hermes").parse(text)
    assert parsed.error is not None and error in parsed.error and parsed.calls == ()


def test_json_reads_a_bare_object_a_list_and_a_fence_and_leaves_prose_alone():
    parser = get_tool_parser("json")
    assert parser.parse('{"name": "search", "arguments": {"query": "capital of Wurzel"}}').calls == (SEARCH,)
    fenced = parser.parse('```json\n[{"name": "a"}, {"name": "b", "arguments": {"x": 1}}]\n```')
    assert [c.name for c in fenced.calls] == ["a", "b"] and fenced.calls[1].arguments == {"x": 1}
    prose = parser.parse("The answer is 42.")
    assert prose.calls == () and prose.content == "The answer is 42." and prose.error is None
    assert "looks like a JSON tool call" in (parser.parse('{"name": "a", ').error or "")


def test_auto_prefers_hermes_tags_then_json():
    auto = get_tool_parser("auto")
    assert auto.parse(format_tool_calls("", [SEARCH])).calls == (SEARCH,)
    assert auto.parse('{"name": "search", "arguments": {"query": "capital of Wurzel"}}').calls == (SEARCH,)
    assert auto.parse("Paris").calls == ()


@pytest.mark.parametrize("name", ["auto", "hermes", "json"])
def test_every_parser_reads_back_what_it_formats(name):
    parser = get_tool_parser(name)
    calls = [SEARCH, ToolCall("open", {"doc_id": 3}, "call_1")]
    assert parser.parse(parser.format("", calls)).calls == tuple(calls)


def test_a_registered_parser_is_found_and_unknown_names_list_the_known_ones(monkeypatch):
    monkeypatch.setattr(
        "palaestra.tools.calls.TOOL_PARSERS", dict(TOOL_PARSERS)
    )  # registered for this test only
    register_tool_parser("hermes-too", HermesParser)
    assert get_tool_parser("hermes-too").parse(format_tool_calls("", [SEARCH])).calls == (SEARCH,)
    with pytest.raises(ValueError, match=r"unknown tool_parser 'nope'; known: \[.*'hermes'"):
        get_tool_parser("nope")


def test_arguments_are_checked_against_the_schema():
    tool = function_tool(
        "open",
        "Open a document.",
        {"type": "object", "properties": {"doc_id": {"type": "integer"}}, "required": ["doc_id"]},
    )
    assert validate_arguments(tool, {"doc_id": 3}) is None
    assert "'doc_id' is a required property" in (validate_arguments(tool, {}) or "")
    assert "(at doc_id)" in (validate_arguments(tool, {"doc_id": "three"}) or "")
    assert ToolCall("open", {"doc_id": 3}, "c").openai()["function"]["arguments"] == '{"doc_id": 3}'
    assert '"name": "open"' in tools_prompt([tool]) and "<tool_call>" in tools_prompt([tool])


@pytest.mark.parametrize("answer", ["[1, 2, 3]", '{"answer": 5}', "42", '{"total": [1, 2]}'])
def test_json_that_names_no_call_is_a_plain_reply(answer):
    """A final answer may itself be JSON: only objects with a "name" are calls."""
    for name in ("json", "auto"):
        parsed = get_tool_parser(name).parse(answer)
        assert parsed == type(parsed)(answer), name


def test_a_json_call_after_prose_is_a_format_error_not_an_answer():
    parsed = get_tool_parser("auto").parse('Let me check.\n{"name": "get", "arguments": {"key": "a"}}')
    assert parsed.calls == () and "must be the whole reply" in (parsed.error or "")
    assert get_tool_parser("json").parse('{"name": "get", "arguments": null}').calls == (
        ToolCall("get", {}, "call_0"),
    )
