"""OpenAI-compatible chat completions through the official `openai` SDK.

Works against OpenAI and anything speaking its `POST {base_url}/chat/completions` protocol
(vLLM, Ollama, LiteLLM, Azure OpenAI's v1 endpoint): the base URL is the API root including
`/v1`. Retries (429, 408, 409, 5xx, connection errors; honouring `retry-after`, else
exponential backoff with jitter) are the SDK's own, `max_retries` times.
"""

from __future__ import annotations

import json
from typing import Any, cast

import openai

from station.providers import _sdk
from station.providers.base import (
    Message,
    ModelRequest,
    ModelResponse,
    ProviderConfig,
    ProviderError,
    ToolCall,
    Usage,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
VENDOR = "OpenAI-compatible API"

# Agent parameter -> chat completions field. Anything else is not sent: agents carry
# parameters for several kinds (and the scripted `scenario`), and an unknown field is a 400.
PARAMETERS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_completion_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
    "seed": "seed",
    "reasoning_effort": "reasoning_effort",
    "parallel_tool_calls": "parallel_tool_calls",
    "tool_choice": "tool_choice",
}


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            # The API has no error flag on tool results: say it in the text.
            content = f"Error: {message.content}" if message.is_error else message.content
            out.append({"role": "tool", "tool_call_id": message.tool_call_id,
                        "content": content})
        elif message.role == "assistant" and message.tool_calls:
            out.append({
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [{"id": call.id, "type": "function",
                                "function": {"name": call.name,
                                             "arguments": json.dumps(call.arguments)}}
                               for call in message.tool_calls],
            })
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def to_openai_tools(request: ModelRequest) -> list[dict[str, Any]]:
    return [{"type": "function",
             "function": {"name": spec.name, "description": spec.description,
                          "parameters": _sdk.object_schema(spec)}}
            for spec in request.tools]


class OpenAIProvider:
    kind = "openai"

    def __init__(self, config: ProviderConfig) -> None:
        if not config.api_key:
            # The SDK would fall back to OPENAI_API_KEY from the worker's environment.
            raise ProviderError("This OpenAI-compatible connection has no API key: store it "
                                "in the vault and reference it as ${secret:NAME}.",
                                kind="config")
        self._config = config
        self._client = openai.OpenAI(
            api_key=config.api_key, base_url=config.base_url or DEFAULT_BASE_URL,
            timeout=float(config.timeout_seconds), max_retries=config.max_retries,
            # The SDK's client defaults, connecting only where the operator's rule allows.
            http_client=_sdk.http_client(openai.DefaultHttpxClient,
                                         config.base_url or DEFAULT_BASE_URL))

    def close(self) -> None:
        self._client.close()

    def complete(self, request: ModelRequest) -> ModelResponse:
        body: dict[str, Any] = {"model": request.model,
                                "messages": to_openai_messages(request.messages)}
        if request.tools:
            body["tools"] = to_openai_tools(request)
        body.update(_sdk.pick(request.parameters, PARAMETERS))
        if not request.tools:
            body.pop("parallel_tool_calls", None)
            body.pop("tool_choice", None)
        try:
            response = self._client.chat.completions.create(**cast(Any, body))
        except openai.OpenAIError as exc:
            raise _sdk.sdk_error(exc, openai, vendor=VENDOR, model=request.model,
                                 timeout=self._config.timeout_seconds,
                                 retries=self._config.max_retries,
                                 secrets=[self._config.api_key]) from None
        if not response.choices:
            raise ProviderError(f"The {VENDOR} returned no choices for model {request.model!r}.",
                                kind="server")
        choice = response.choices[0]
        calls = []
        for call in choice.message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:  # a "custom" (free-text) tool call: we never offer those
                raise ProviderError(f"The model made a {call.type!r} tool call; only function "
                                    "tools are offered.", kind="model")
            calls.append(ToolCall(id=call.id, name=function.name,
                                  arguments=_sdk.parse_arguments(
                                      function.arguments, tool=function.name, vendor=VENDOR)))
        usage = response.usage
        return ModelResponse(
            message=Message(role="assistant", content=choice.message.content or "",
                            tool_calls=tuple(calls)),
            usage=Usage(input_tokens=(usage.prompt_tokens or 0) if usage else 0,
                        output_tokens=(usage.completion_tokens or 0) if usage else 0),
            model=response.model or request.model,
            stop_reason=choice.finish_reason or "",
        )
