"""The scripted provider: deterministic turns chosen by the conversation (so a resumed run gets
the same answers), substitutions, simulated errors and delays, deterministic usage, and
scenario validation that names the turn and field."""

from __future__ import annotations

import time
from typing import Any

import pytest

from station.core.errors import InvalidInput
from station.providers.base import Message, ModelRequest, ProviderConfig, ProviderError
from station.providers.registry import build
from station.providers.scripted import ScriptedProvider, validate_scenario

SCENARIO = [
    {"tool_calls": [{"name": "clock__get_current_time", "arguments": {"q": "{input}"}},
                    {"name": "clock__get_date"}]},
    {"content": "It is {last_tool_result}. You asked: {input}"},
]


def ask(messages: list[Message], scenario: Any = SCENARIO) -> ModelRequest:
    return ModelRequest(model="scripted-1", messages=messages,
                        parameters={"scenario": scenario, "temperature": 0})


def llm(timeout: float = 60) -> Any:
    return build(ProviderConfig(kind="scripted", timeout_seconds=timeout))


USER = [Message("system", "Be brief."), Message("user", "time please")]


def test_turns_follow_the_conversation_and_replay_identically() -> None:
    first = llm().complete(ask(USER))
    assert isinstance(llm(), ScriptedProvider)
    assert [(c.id, c.name, c.arguments) for c in first.message.tool_calls] == [
        ("call_1_1", "clock__get_current_time", {"q": "time please"}),
        ("call_1_2", "clock__get_date", {})]
    assert first.stop_reason == "tool_calls"
    conversation = [*USER, first.message,
                    Message("tool", "2026-05-01", tool_call_id="call_1_2"),
                    Message("tool", "12:00", tool_call_id="call_1_1")]
    second = llm().complete(ask(conversation))
    assert second.message.content == "It is 12:00. You asked: time please"
    assert second.message.tool_calls == () and second.stop_reason == "stop"
    # A fresh provider given the same conversation (a resumed run) answers the same.
    assert ScriptedProvider(ProviderConfig(kind="scripted")).complete(ask(conversation)) == \
        second
    again = llm().complete(ask(USER))
    assert again == first


def test_usage_is_ceil_of_characters_over_four() -> None:
    response = llm().complete(ask([Message("user", "abcde")], [{"content": "123456789"}]))
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 3)
    assert response.model == "scripted-1"


def test_an_exhausted_scenario_ends_with_a_final_answer() -> None:
    conversation = [Message("user", "hi"), Message("assistant", "done")]
    response = llm().complete(ask(conversation, [{"content": "done"}]))
    assert response.message.tool_calls == ()
    assert "no turn 2 (it has 1)" in response.message.content


@pytest.mark.parametrize("kind", ["rate_limit", "server", "auth", "timeout"])
def test_error_turns_raise_provider_errors(kind: str) -> None:
    scenario = [{"error": {"kind": kind, "message": f"simulated {kind}"}}]
    with pytest.raises(ProviderError) as exc:
        llm().complete(ask([Message("user", "hi")], scenario))
    assert (exc.value.kind, str(exc.value)) == (kind, f"simulated {kind}")


def test_delays_are_slept_and_a_delay_beyond_the_timeout_is_a_timeout() -> None:
    started = time.monotonic()
    llm().complete(ask([Message("user", "hi")], [{"content": "x", "delay_seconds": 0.2}]))
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    with pytest.raises(ProviderError) as exc:
        llm(timeout=0.2).complete(ask([Message("user", "hi")],
                                      [{"content": "x", "delay_seconds": 5}]))
    assert exc.value.kind == "timeout" and time.monotonic() - started < 2


def test_an_invalid_scenario_at_call_time_is_a_clear_error() -> None:
    with pytest.raises(ProviderError) as exc:
        llm().complete(ask([Message("user", "hi")], None))
    assert exc.value.kind == "bad_request" and "scenario" in str(exc.value)


@pytest.mark.parametrize(("scenario", "message"), [
    ({"content": "x"}, "scenario: must be a list of turns"),
    ([], "scenario: give at least one turn"),
    ([{"content": "x"}] * 201, "at most 200 turns"),
    (["hello"], "scenario turn 1: must be an object"),
    ([{"content": "x"}, {}], "scenario turn 2: give exactly one of tool_calls, content or "
                             "error"),
    ([{"content": "x", "tool_calls": []}], "(got tool_calls, content)"),
    ([{"content": 42}], "scenario turn 1: content must be text"),
    ([{"content": "x", "colour": "red"}], "scenario turn 1: unknown field 'colour'"),
    ([{"tool_calls": []}], "scenario turn 1: tool_calls must be a non-empty list"),
    ([{"tool_calls": [{"name": "get_time"}]}],
     "scenario turn 1: tool_calls[0].name: use <server>__<tool>"),
    ([{"tool_calls": [{"name": "a__b", "arguments": [1]}]}],
     "scenario turn 1: tool_calls[0].arguments: must be an object"),
    ([{"tool_calls": [{"name": "a__b", "args": {}}]}], "tool_calls[0]: unknown field 'args'"),
    ([{"error": {"kind": "boom"}}], "scenario turn 1: error.kind must be one of"),
    ([{"error": "boom"}], "scenario turn 1: error must be"),
    ([{"content": "x", "delay_seconds": 31}], "delay_seconds must be a number from 0 to 30"),
    ([{"content": "x", "delay_seconds": "1"}], "delay_seconds must be a number"),
    ([{"content": "x", "delay_seconds": True}], "delay_seconds must be a number"),
])
def test_validation_names_the_turn_and_field(scenario: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_scenario(scenario)
    assert any(message in m for m in exc.value.errors["parameters"]), exc.value.errors


def test_a_valid_scenario_passes() -> None:
    validate_scenario([*SCENARIO, {"error": {"kind": "server"}, "delay_seconds": 1.5}])
