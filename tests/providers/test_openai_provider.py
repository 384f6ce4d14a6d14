"""The OpenAI-compatible provider through the real `openai` SDK against the loopback fake:
what goes on the wire, tool-call round trips, usage, retries, and errors an admin can act on
that never contain the key."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from station.providers.base import (
    Message,
    ModelRequest,
    ProviderConfig,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from station.providers.openai_provider import OpenAIProvider
from tests.providers.fakes import OpenAIFake

KEY = "sk-proj-canary-Zq81x0PLAINTEXT"
CLOCK = ToolSpec("clock__get_current_time", "The current time",
                 {"type": "object", "properties": {"timezone": {"type": "string"}},
                  "required": ["timezone"]})


@pytest.fixture
def fake() -> Iterator[OpenAIFake]:
    with OpenAIFake(api_key=KEY) as server:
        yield server


def provider(fake: OpenAIFake, *, key: str = KEY, timeout: float = 5,
             retries: int = 2) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(kind="openai", base_url=fake.base_url, api_key=key,
                                         timeout_seconds=timeout, max_retries=retries))


def ask(*messages: Message, tools: list[ToolSpec] | None = None,
        model: str = "gpt-test", **parameters: object) -> ModelRequest:
    return ModelRequest(model=model, messages=list(messages), tools=tools or [],
                        parameters=dict(parameters))


SYSTEM = Message("system", "You tell the time.")
USER = Message("user", "What time is it in UTC?")


def test_tool_call_round_trip_sends_tools_system_and_results(fake: OpenAIFake) -> None:
    fake.push(fake.tool_calls(("clock__get_current_time", {"timezone": "UTC"})),
              fake.text("It is noon.", prompt_tokens=40, completion_tokens=4))
    llm = provider(fake)

    first = llm.complete(ask(SYSTEM, USER, tools=[CLOCK]))
    assert first.message.role == "assistant"
    assert first.message.tool_calls == (
        ToolCall(id="call_fake0001", name="clock__get_current_time",
                 arguments={"timezone": "UTC"}),)
    assert first.stop_reason == "tool_calls"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (13, 9)

    result = Message("tool", "12:00:00Z", tool_call_id=first.message.tool_calls[0].id)
    second = llm.complete(ask(SYSTEM, USER, first.message, result, tools=[CLOCK]))
    assert second.message.content == "It is noon."
    assert second.message.tool_calls == ()
    assert second.usage.total == 44
    assert second.model == "gpt-test"

    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["messages"] == [{"role": "system", "content": "You tell the time."},
                                     {"role": "user", "content": "What time is it in UTC?"}]
    assert sent.json["tools"] == [{"type": "function", "function": {
        "name": "clock__get_current_time", "description": "The current time",
        "parameters": CLOCK.input_schema}}]
    replay = fake.requests[1].json["messages"]
    assert replay[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_fake0001", "type": "function",
         "function": {"name": "clock__get_current_time", "arguments": '{"timezone": "UTC"}'}}]}
    assert replay[3] == {"role": "tool", "tool_call_id": "call_fake0001",
                         "content": "12:00:00Z"}


def test_tool_errors_say_so_and_schemaless_tools_get_an_object_schema(
        fake: OpenAIFake) -> None:
    call = ToolCall("c1", "clock__get_current_time", {})
    llm = provider(fake)
    llm.complete(ask(USER, Message("assistant", "", (call,)),
                     Message("tool", "no such zone", tool_call_id="c1", is_error=True),
                     tools=[ToolSpec("clock__ping", "", {})]))
    sent = fake.requests[0].json
    assert sent["messages"][-1]["content"] == "Error: no such zone"
    assert sent["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_parameters_pass_through_an_allowlist(fake: OpenAIFake) -> None:
    provider(fake).complete(ask(USER, temperature=0.2, top_p=0.9, max_output_tokens=256,
                                seed=7, stop=["END"], scenario=[{"content": "x"}],
                                api_key="nope", base_url="http://evil", parallel_tool_calls=False))
    sent = fake.requests[0].json
    assert {k: sent[k] for k in ("temperature", "top_p", "max_tokens", "seed", "stop")} == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "seed": 7, "stop": ["END"]}
    for absent in ("scenario", "api_key", "base_url", "max_output_tokens",
                   "parallel_tool_calls"):  # the last one only goes with tools
        assert absent not in sent


def test_malformed_tool_arguments_are_a_clear_model_error(fake: OpenAIFake) -> None:
    fake.push(fake.tool_calls(("clock__get_current_time", '{"timezone": "UTC"')),
              fake.tool_calls(("clock__get_current_time", '["UTC"]')),
              fake.tool_calls(("clock__get_current_time", "")))
    llm = provider(fake)
    with pytest.raises(ProviderError) as exc:
        llm.complete(ask(USER, tools=[CLOCK]))
    assert exc.value.kind == "model"
    assert "malformed JSON arguments" in str(exc.value)
    assert "clock__get_current_time" in str(exc.value)
    with pytest.raises(ProviderError, match="not a JSON object"):
        llm.complete(ask(USER, tools=[CLOCK]))
    # Empty arguments (a tool without parameters, as some servers send it) are {}.
    assert llm.complete(ask(USER, tools=[CLOCK])).message.tool_calls[0].arguments == {}


@pytest.mark.parametrize("failure", ["rate_limited", "server_error"])
def test_429_and_5xx_are_retried_by_the_sdk_and_succeed(fake: OpenAIFake, failure: str) -> None:
    fake.push(getattr(fake, failure)(), getattr(fake, failure)(), fake.text("finally"))
    response = provider(fake, retries=2).complete(ask(USER))
    assert response.message.content == "finally"
    assert len(fake.requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]


def test_rate_limit_that_outlasts_the_retries_is_reported(fake: OpenAIFake) -> None:
    fake.push(*[fake.rate_limited() for _ in range(3)])
    with pytest.raises(ProviderError) as exc:
        provider(fake, retries=1).complete(ask(USER))
    assert exc.value.kind == "rate_limit" and exc.value.status == 429
    assert "after 1 retries" in str(exc.value)
    assert len(fake.requests) == 2


def test_server_error_after_retries_is_kind_server(fake: OpenAIFake) -> None:
    fake.push(fake.server_error(503), fake.server_error(503))
    with pytest.raises(ProviderError) as exc:
        provider(fake, retries=1).complete(ask(USER))
    assert (exc.value.kind, exc.value.status) == ("server", 503)


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(fake: OpenAIFake) -> None:
    wrong = "sk-proj-WRONG-canary-55555"
    with pytest.raises(ProviderError) as exc:
        provider(fake, key=wrong).complete(ask(USER))
    assert exc.value.kind == "auth" and exc.value.status == 401
    assert "check the API key secret" in str(exc.value)
    # The fake echoed the key in its error body, as OpenAI echoes a masked one.
    assert wrong in str(fake.requests[0].headers)
    for text in (str(exc.value), repr(exc.value), repr(exc.value.args)):
        assert wrong not in text and "WRONG" not in text
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert len(fake.requests) == 1  # 401 is not retried


def test_forbidden_is_an_auth_error(fake: OpenAIFake) -> None:
    fake.push(fake.error(403, f"Project does not have access (key {KEY})"))
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER))
    assert exc.value.kind == "auth" and KEY not in str(exc.value)


def test_unknown_model_names_the_model(fake: OpenAIFake) -> None:
    fake.push(fake.unknown_model())
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER, model="gpt-9-ultra"))
    assert exc.value.kind == "model" and exc.value.status == 404
    assert "Unknown model 'gpt-9-ultra'" in str(exc.value)


def test_bad_request_quotes_the_server_without_the_key(fake: OpenAIFake) -> None:
    fake.push(fake.error(400, f"max_tokens is too large: 999999. (key {KEY[:12]}…{KEY[-4:]})"))
    with pytest.raises(ProviderError) as exc:
        provider(fake).complete(ask(USER, max_output_tokens=999999))
    assert exc.value.kind == "bad_request"
    assert "max_tokens is too large" in str(exc.value)
    assert KEY[:12] not in str(exc.value)


def test_slow_provider_times_out_after_the_configured_retries(fake: OpenAIFake) -> None:
    fake.push(fake.slow(5), fake.slow(5))
    started = time.monotonic()
    with pytest.raises(ProviderError) as exc:
        provider(fake, timeout=0.3, retries=1).complete(ask(USER))
    assert exc.value.kind == "timeout"
    assert "within 0.3 s" in str(exc.value) and "tried 2 times" in str(exc.value)
    assert time.monotonic() - started < 4
    assert len(fake.requests) == 2


def test_nothing_listening_is_a_connection_error() -> None:
    with OpenAIFake() as gone:
        url = gone.base_url
    llm = OpenAIProvider(ProviderConfig(kind="openai", base_url=url, api_key=KEY,
                                        max_retries=0))
    with pytest.raises(ProviderError) as exc:
        llm.complete(ask(USER))
    assert exc.value.kind == "connection" and KEY not in str(exc.value)


def test_a_connection_without_a_key_is_refused_before_any_call(monkeypatch) -> None:
    # The SDK would otherwise pick OPENAI_API_KEY up from the worker's environment.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    with pytest.raises(ProviderError) as exc:
        OpenAIProvider(ProviderConfig(kind="openai", base_url="http://127.0.0.1:9/v1"))
    assert exc.value.kind == "config"
