"""The `scripted` provider: replays a scenario instead of calling a model (demos, tests,
benchmarks). It is stateless and deterministic: the answer to a call is chosen by how many
assistant messages the conversation already holds, so a resumed or replayed run gets the same
answers in the same order.

The scenario is the agent's `parameters["scenario"]`, a list of turns:

    {"tool_calls": [{"name": "clock__get_current_time", "arguments": {"timezone": "UTC"}}]}
    {"content": "It is {last_tool_result}. You asked: {input}"}
    {"error": {"kind": "rate_limit", "message": "simulated 429"}}

Each turn may add `"delay_seconds"` (0–30; a delay beyond the connection's timeout becomes a
timeout error after the timeout, as a real provider would). `{input}` is the first user
message, `{last_tool_result}` the latest tool result; both are substituted in content and in
text tool arguments. Usage is deterministic: ceil(characters / 4) tokens in and out.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, get_args

from station.core.errors import InvalidInput
from station.providers.base import (
    ErrorKind,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderConfig,
    ProviderError,
    ToolCall,
    Usage,
)

MAX_TURNS = 200
MAX_DELAY_SECONDS = 30.0
MAX_TEXT = 100_000
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]+__[A-Za-z0-9_.-]+$")
_TURN_KEYS = {"tool_calls", "content", "error", "delay_seconds"}
_CALL_KEYS = {"name", "arguments"}
FIELD = "parameters"


def _problems(value: Any) -> list[str]:
    if not isinstance(value, list):
        return ["scenario: must be a list of turns, each {\"tool_calls\": [...]} or "
                "{\"content\": \"...\"}"]
    if not value:
        return ["scenario: give at least one turn"]
    if len(value) > MAX_TURNS:
        return [f"scenario: at most {MAX_TURNS} turns (got {len(value)})"]
    problems: list[str] = []
    for number, turn in enumerate(value, start=1):
        where = f"scenario turn {number}"
        if not isinstance(turn, dict):
            problems.append(f"{where}: must be an object with tool_calls, content or error")
            continue
        unknown = sorted(set(turn) - _TURN_KEYS, key=str)
        if unknown:
            problems.append(f"{where}: unknown field {unknown[0]!r} (known: content, "
                            "tool_calls, error, delay_seconds)")
        given = [key for key in ("tool_calls", "content", "error") if key in turn]
        if len(given) != 1:
            problems.append(f"{where}: give exactly one of tool_calls, content or error"
                            + (f" (got {', '.join(given)})" if given else ""))
        if "content" in turn and (not isinstance(turn["content"], str)
                                  or len(turn["content"]) > MAX_TEXT):
            problems.append(f"{where}: content must be text (at most {MAX_TEXT} characters)")
        if "tool_calls" in turn:
            problems += _call_problems(where, turn["tool_calls"])
        if "error" in turn:
            problems += _error_problems(where, turn["error"])
        if "delay_seconds" in turn:
            delay = turn["delay_seconds"]
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not (
                    0 <= delay <= MAX_DELAY_SECONDS):
                problems.append(f"{where}: delay_seconds must be a number from 0 to "
                                f"{MAX_DELAY_SECONDS:g}")
    return problems


def _call_problems(where: str, calls: Any) -> list[str]:
    if not isinstance(calls, list) or not calls:
        return [f"{where}: tool_calls must be a non-empty list of "
                "{\"name\": \"<server>__<tool>\", \"arguments\": {...}}"]
    problems = []
    for index, call in enumerate(calls):
        at = f"{where}: tool_calls[{index}]"
        if not isinstance(call, dict):
            problems.append(f"{at}: must be an object with name and arguments")
            continue
        if unknown := sorted(set(call) - _CALL_KEYS, key=str):
            problems.append(f"{at}: unknown field {unknown[0]!r} (known: name, arguments)")
        name = call.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            problems.append(f"{at}.name: use <server>__<tool>, e.g. clock__get_current_time")
        if not isinstance(call.get("arguments", {}), dict):
            problems.append(f"{at}.arguments: must be an object")
    return problems


def _error_problems(where: str, error: Any) -> list[str]:
    if not isinstance(error, dict):
        return [f"{where}: error must be {{\"kind\": ..., \"message\": ...}}"]
    problems = []
    if error.get("kind") not in ERROR_KINDS:
        problems.append(f"{where}: error.kind must be one of {', '.join(ERROR_KINDS)}")
    if not isinstance(error.get("message", ""), str):
        problems.append(f"{where}: error.message must be text")
    if unknown := sorted(set(error) - {"kind", "message"}, key=str):
        problems.append(f"{where}: error has unknown field {unknown[0]!r}")
    return problems


def validate_scenario(value: Any) -> None:
    """Raise InvalidInput (field `parameters`) naming the turn and field of each problem."""
    problems = _problems(value)
    if problems:
        raise InvalidInput(problems[0], errors={FIELD: problems})


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _message_text(message: Message) -> str:
    calls = "".join(json.dumps(c.to_json(), sort_keys=True) for c in message.tool_calls)
    return message.content + calls


def _substitute(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for token, text in values.items():
            value = value.replace(token, text)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


class ScriptedProvider:
    kind = "scripted"

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config

    def close(self) -> None:
        """Nothing to release (no connections)."""

    def complete(self, request: ModelRequest) -> ModelResponse:
        scenario = request.parameters.get("scenario")
        problems = _problems(scenario)
        if problems:
            raise ProviderError(f"The agent's scripted scenario is invalid: {problems[0]}",
                                kind="bad_request")
        assert isinstance(scenario, list)
        index = sum(1 for m in request.messages if m.role == "assistant")
        tokens_in = sum(estimate_tokens(_message_text(m)) for m in request.messages)
        if index >= len(scenario):
            message = Message(role="assistant", content=(
                f"The scripted scenario has no turn {index + 1} (it has {len(scenario)}), so "
                "this run ends here."))
            return self._response(request, message, tokens_in, "stop")
        turn: dict[str, Any] = scenario[index]
        self._wait(float(turn.get("delay_seconds", 0)))
        if "error" in turn:
            error = turn["error"]
            raise ProviderError(error.get("message") or f"Simulated {error['kind']} error "
                                f"(scripted turn {index + 1}).", kind=error["kind"])
        values = {"{input}": next((m.content for m in request.messages if m.role == "user"),
                                  ""),
                  "{last_tool_result}": next((m.content for m in reversed(request.messages)
                                              if m.role == "tool"), "")}
        if "tool_calls" in turn:
            calls = tuple(
                ToolCall(id=f"call_{index + 1}_{n + 1}", name=call["name"],
                         arguments=_substitute(call.get("arguments", {}), values))
                for n, call in enumerate(turn["tool_calls"]))
            return self._response(request, Message(role="assistant", tool_calls=calls),
                                  tokens_in, "tool_calls")
        content = _substitute(turn["content"], values)
        return self._response(request, Message(role="assistant", content=content), tokens_in,
                              "stop")

    def _wait(self, delay: float) -> None:
        timeout = float(self._config.timeout_seconds)
        if delay > timeout:
            time.sleep(timeout)
            raise ProviderError(f"The scripted provider did not answer within {timeout:g} s "
                                "(simulated slow turn).", kind="timeout")
        if delay > 0:
            time.sleep(delay)

    @staticmethod
    def _response(request: ModelRequest, message: Message, tokens_in: int,
                  stop_reason: str) -> ModelResponse:
        return ModelResponse(message=message,
                             usage=Usage(input_tokens=tokens_in,
                                         output_tokens=estimate_tokens(_message_text(message))),
                             model=request.model, stop_reason=stop_reason)
