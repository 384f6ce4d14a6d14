"""The run loop through the real OpenAI and Anthropic SDKs, against loopback servers that
speak each API's wire protocol: tool calls reach a real MCP server, results go back to the
model, usage is accounted, variables fill the instructions, the key never leaks."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from station.providers.models import ModelProvider
from station.runs import engine, services
from station.runs.models import Run, RunStep
from station.vault.services import set_secret, set_variable
from tenants import context
from tests.fixtures import SYSTEM
from tests.providers.fakes import AnthropicFake, FakeAPI, OpenAIFake
from tests.runs.conftest import RunWorld

LLM_KEY = "sk-test-5b2e-never-in-steps"


def _connect(world: RunWorld, fake: FakeAPI, kind: str) -> None:
    with context.org_scope(world.fx.org):
        set_secret(actor=SYSTEM, environment=world.env, name="LLM_KEY", value=LLM_KEY)
        set_variable(actor=SYSTEM, environment=world.env, name="REGION", value="eu-west-3")
        ModelProvider.objects.create(organization=world.fx.org, environment=world.env,
                                     name=f"{kind}-fake", kind=kind, base_url=fake.base_url,
                                     api_key="${secret:LLM_KEY}", max_retries=1,
                                     timeout_seconds=10)


def _run(world: RunWorld, kind: str) -> tuple[Run, list[RunStep]]:
    agent = world.agent(f"{kind}-bot", [], provider=f"{kind}-fake", model="model-x",
                        tools=["clock/get_current_time"],
                        instructions="Answer for region ${var:REGION}. "
                                     "Never ${secret:LLM_KEY}.")
    with context.org_scope(world.fx.org):
        run, _ = services.start_run(actor=SYSTEM, agent=agent,
                                    input={"message": "What time is it in UTC?"})
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    with context.org_scope(world.fx.org):
        return Run.objects.get(pk=run.pk), list(RunStep.objects.filter(run=run)
                                                .order_by("sequence"))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_tool_calls_round_trip_through_the_real_sdk(world: RunWorld, kind: str) -> None:
    fake: Any = OpenAIFake(api_key=LLM_KEY) if kind == "openai" else AnthropicFake(
        api_key=LLM_KEY)
    with fake:
        _connect(world, fake, kind)
        fake.push(fake.tool_calls(("clock__get_current_time", {"timezone": "UTC"})),
                  fake.text("It is time."))
        run, steps = _run(world, kind)
        requests = [r.json for r in fake.requests]

    assert run.status == Run.SUCCEEDED, run.error
    assert run.output == "It is time."
    assert [s.kind for s in steps] == ["model", "tool", "model"]
    assert '"timezone": "UTC"' in steps[1].output["text"]
    # Usage as the provider reported it.
    assert run.input_tokens == sum(s.input_tokens for s in steps) > 0
    assert [s.output_tokens for s in steps if s.kind == "model"] == (
        [9, 7] if kind == "openai" else [8, 5])
    # What the model was sent: the resolved instructions, the tool, then the tool's result.
    first, second = requests
    if kind == "openai":
        # Variables are filled in; a secret reference is never resolved for a model.
        assert first["messages"][0] == {
            "role": "system", "content": "Answer for region eu-west-3. Never ${secret:LLM_KEY}."}
        assert first["tools"][0]["function"]["name"] == "clock__get_current_time"
        tool_message = second["messages"][-1]
        assert tool_message["role"] == "tool" and "UTC" in tool_message["content"]
    else:
        assert "eu-west-3" in str(first["system"])
        assert first["tools"][0]["name"] == "clock__get_current_time"
        result = second["messages"][-1]["content"][0]
        assert result["type"] == "tool_result" and "UTC" in str(result["content"])
    with context.org_scope(world.fx.org), transaction.atomic():
        stored = repr(list(RunStep.objects.filter(run=run).values())) + run.output + run.error
    assert LLM_KEY not in stored


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_bad_key_fails_the_run_clearly_without_the_key(world: RunWorld, kind: str) -> None:
    fake: Any = OpenAIFake(api_key="sk-the-right-one") if kind == "openai" else \
        AnthropicFake(api_key="sk-the-right-one")
    with fake:
        _connect(world, fake, kind)
        run, steps = _run(world, kind)
    assert run.status == Run.FAILED
    assert "auth" in run.error and LLM_KEY not in run.error
    assert LLM_KEY not in repr([s.error for s in steps])


def test_a_missing_variable_in_the_instructions_fails_the_run(world: RunWorld) -> None:
    with OpenAIFake() as fake:
        with context.org_scope(world.fx.org):
            ModelProvider.objects.create(organization=world.fx.org, environment=world.env,
                                         name="openai-fake", kind="openai",
                                         base_url=fake.base_url, api_key="${secret:TRICKY_TOKEN}")
        agent = world.agent("needs-var", [], provider="openai-fake", model="m",
                            instructions="Region ${var:NOPE}; never ${secret:TRICKY_TOKEN}.")
        with context.org_scope(world.fx.org):
            run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
        with context.org_context(world.fx.org):
            engine.execute(run.pk)
        assert fake.requests == []
    with context.org_scope(world.fx.org):
        run = Run.objects.get(pk=run.pk)
    assert run.status == Run.FAILED and "NOPE" in run.error
