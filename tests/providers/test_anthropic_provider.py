"""The Anthropic provider through the real `anthropic` SDK against the loopback fake: system
prompt apart, tool_use / tool_result blocks (consecutive results in one user message),
max_tokens, usage, retries, and clear errors without the key."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from station.providers.anthropic_provider import AnthropicProvider, to_anthropic
from station.providers.base import (
    Message,
    ModelRequest,
    ProviderConfig,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from tests.providers.fakes import AnthropicFake

KEY = "sk-ant-api03-canary-PLAINTEXT-77"
CLOCK = ToolSpec("clock__get_current_time", "The current time",
                 {"type": "object", "properties": {"timezone": {"type": "string"}}})
DATE = ToolSpec("clock__get_date", "Today's date", {})
SYSTEM = Message("system", "You tell the time.")
USER = Message("user", "Time and date in UTC?")


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


def provider(fake: AnthropicFake, *, key: str = KEY, timeout: float = 5,
             retries: int = 2) -> AnthropicProvider:
    return AnthropicProvider(ProviderConfig(kind="anthropic", base_url=fake.base_url,
                                            api_key=key, timeout_seconds=timeout,
                                            max_retries=retries))


def ask(*messages: Message, tools: list[ToolSpec] | None = None, model: str = "claude-test",
        **parameters: object) -> ModelRequest:
    return ModelRequest(model=model, messages=list(messages), tools=tools or [],
                        parameters=dict(parameters))


def test_tool_round_trip_with_two_calls_merges_their_results(fake: AnthropicFake) -> None:
    fake.push(fake.tool_calls(("clock__get_current_time", {"timezone": "UTC"}),
                              ("clock__get_date", {}), content="Let me look."),
              fake.text("Noon, 1 May.", input_tokens=120, output_tokens=6))
    llm = provider(fake)

    first = llm.complete(ask(SYSTEM, USER, tools=[CLOCK, DATE]))
    assert first.message.content == "Let me look."
    assert [(c.name, c.arguments) for c in first.message.tool_calls] == [
        ("clock__get_current_time", {"timezone": "UTC"}), ("clock__get_date", {})]
    assert first.stop_reason == "tool_use"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (19, 8)

    results = [Message("tool", "12:00", tool_call_id=first.message.tool_calls[0].id),
               Message("tool", "2026-05-01", tool_call_id=first.message.tool_calls[1].id)]
    second = llm.complete(ask(SYSTEM, USER, first.message, *results, tools=[CLOCK, DATE]))
    assert second.message.content == "Noon, 1 May." and second.usage.total == 126

    sent = fake.requests[0]
    assert sent.path == "/v1/messages"
    assert KEY in (sent.headers.get("x-api-key"), sent.headers.get("authorization",
                                                                   "").removeprefix("Bearer "))
    assert "anthropic-version" in sent.headers
    assert sent.json["system"] == "You tell the time."
    assert sent.json["max_tokens"] == 1024
    assert sent.json["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Time and date in UTC?"}]}]
    assert sent.json["tools"][1] == {"name": "clock__get_date", "description": "Today's date",
                                     "input_schema": {"type": "object", "properties": {}}}
    replay = fake.requests[1].json["messages"]
    assert replay[1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_fake0001", "name": "clock__get_current_time",
         "input": {"timezone": "UTC"}},
        {"type": "tool_use", "id": "toolu_fake0002", "name": "clock__get_date", "input": {}}]}
    assert replay[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_fake0001", "content": "12:00"},
        {"type": "tool_result", "tool_use_id": "toolu_fake0002", "content": "2026-05-01"}]}
    assert len(replay) == 3


def test_conversion_puts_results_before_user_text_and_flags_errors() -> None:
    call = ToolCall("t1", "clock__get_date", {})
    system, messages = to_anthropic([
        SYSTEM, Message("system", "Be brief."), USER, Message("assistant", "", (call,)),
        Message("tool", "", tool_call_id="t1", is_error=True), Message("user", "And?")])
    assert system == "You tell the time.\n\nBe brief."
    assert messages[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "clock__get_date", "input": {}}]}
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "is_error": True},
        {"type": "text", "text": "And?"}]}


def test_max_tokens_and_parameters_come_from_the_agent(fake: AnthropicFake) -> None:
    provider(fake).complete(ask(USER, max_output_tokens=300, temperature=0.0, top_k=5,
                                stop="END", scenario=[], seed=3))
    sent = fake.requests[0].json
    assert (sent["max_tokens"], sent["temperature"], sent["top_k"]) == (300, 0.0, 5)
    assert sent["stop_sequences"] == ["END"]
    assert "scenario" not in sent and "seed" not in sent and "system" not in sent


@pytest.mark.parametrize("failure", ["rate_limited", "server_error"])
def test_429_and_5xx_are_retried_and_succeed(fake: AnthropicFake, failure: str) -> None:
    fake.push(getattr(fake, failure)(), fake.text("ok now"))
    assert provider(fake).complete(ask(USER)).message.content == "ok now"
    assert len(fake.requests) == 2


def test_overloaded_after_retries_is_a_server_error(fake: AnthropicFake) -> None:
    fake.push(fake.server_error(529), fake.server_error(529))
    with pytest.raises(ProviderError) as exc:
        provider(fake, retries=1).complete(ask(USER))
    assert (exc.value.kind, exc.value.status) == ("server", 529)
    assert "Overloaded" in str(exc.value)


def test_wrong_key_is_an_auth_error_without_the_key(fake: AnthropicFake) -> None:
    wrong = "sk-ant-api03-WRONG-canary-999"
    with pytest.raises(ProviderError) as exc:
        provider(fake, key=wrong).complete(ask(USER))
    assert exc.value.kind == "auth"
    assert "check the API key secret" in str(exc.value)
    assert wrong not in str(exc.value) and "WRONG" not in repr(exc.value.args)
    assert len(fake.requests) == 1


def test_unknown_model_is_a_model_error(fake: AnthropicFake) -> None:
    fake.push(fake.unknown_model())
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER, model="claude-nope"))
    assert exc.value.kind == "model" and "Unknown model 'claude-nope'" in str(exc.value)


def test_bad_request_is_quoted(fake: AnthropicFake) -> None:
    fake.push(fake.error(400, "temperature: Input should be less than or equal to 1"))
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER, temperature=3))
    assert exc.value.kind == "bad_request" and "less than or equal to 1" in str(exc.value)


def test_the_fake_refuses_unanswered_tool_use_like_the_api(fake: AnthropicFake) -> None:
    call = ToolCall("t9", "clock__get_date", {})
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER, Message("assistant", "", (call,)),
                                    Message("user", "never mind")))
    assert exc.value.kind == "bad_request" and "tool_result" in str(exc.value)


def test_slow_answer_is_a_timeout(fake: AnthropicFake) -> None:
    fake.push(fake.slow(5))
    started = time.monotonic()
    with pytest.raises(ProviderError) as exc:
        provider(fake, timeout=0.3, retries=0).complete(ask(USER))
    assert exc.value.kind == "timeout" and time.monotonic() - started < 3


def test_a_connection_without_a_key_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-environment")
    with pytest.raises(ProviderError) as exc:
        AnthropicProvider(ProviderConfig(kind="anthropic"))
    assert exc.value.kind == "config"
