"""Anthropic's Messages API through the official `anthropic` SDK.

The Messages API differs from chat completions in ways this module absorbs: the system prompt
is a separate field; tool calls are `tool_use` content blocks of the assistant message and
their results `tool_result` blocks of the next *user* message (so consecutive tool results,
and any user text after them, become one user message); `max_tokens` is required. The base URL
is the API root without `/v1` (the SDK adds `/v1/messages`).
"""

from __future__ import annotations

from typing import Any, cast

import anthropic

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

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024
VENDOR = "Anthropic API"

# Agent parameter -> Messages API field. SDK 2.x dropped the sampling fields (temperature,
# top_p, top_k) from `messages.create()`; they still go on the wire, through `extra_body`.
PARAMETERS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_output_tokens": "max_tokens",
    "max_tokens": "max_tokens",
    "stop_sequences": "stop_sequences",
    "stop": "stop_sequences",
    "tool_choice": "tool_choice",
}
_SAMPLING = ("temperature", "top_p", "top_k")


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:
            block["content"] = message.content
        if message.is_error:
            block["is_error"] = True
        return [block]
    # The API refuses empty text blocks.
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": message.content}] if message.content else [])
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": call.arguments})
    return blocks


def to_anthropic(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages). Consecutive messages of one API role are merged into one,
    tool results first (the API wants each `tool_result` right after its `tool_use`)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            merged = out[-1]["content"] + blocks
            merged.sort(key=lambda b: b["type"] != "tool_result")  # stable: results first
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def to_anthropic_tools(request: ModelRequest) -> list[dict[str, Any]]:
    return [{"name": spec.name, "description": spec.description,
             "input_schema": _sdk.object_schema(spec)} for spec in request.tools]


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, config: ProviderConfig) -> None:
        if not config.api_key:
            # The SDK would fall back to ANTHROPIC_API_KEY or a profile on the worker's disk.
            raise ProviderError("This Anthropic connection has no API key: store it in the "
                                "vault and reference it as ${secret:NAME}.", kind="config")
        self._config = config
        self._client = anthropic.Anthropic(
            api_key=config.api_key, base_url=config.base_url or DEFAULT_BASE_URL,
            timeout=float(config.timeout_seconds), max_retries=config.max_retries,
            # The SDK's client defaults, connecting only where the operator's rule allows.
            http_client=_sdk.http_client(anthropic.DefaultHttpxClient,
                                         config.base_url or DEFAULT_BASE_URL))

    def close(self) -> None:
        self._client.close()

    def complete(self, request: ModelRequest) -> ModelResponse:
        system, messages = to_anthropic(request.messages)
        body: dict[str, Any] = {"model": request.model, "messages": messages,
                                "max_tokens": DEFAULT_MAX_TOKENS}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = to_anthropic_tools(request)
        body.update(_sdk.pick(request.parameters, PARAMETERS))
        if isinstance(body.get("stop_sequences"), str):
            body["stop_sequences"] = [body["stop_sequences"]]
        if not request.tools:
            body.pop("tool_choice", None)
        sampling = {name: body.pop(name) for name in _SAMPLING if name in body}
        if sampling:
            body["extra_body"] = sampling
        try:
            response = self._client.messages.create(**cast(Any, body))
        except anthropic.AnthropicError as exc:
            raise _sdk.sdk_error(exc, anthropic, vendor=VENDOR, model=request.model,
                                 timeout=self._config.timeout_seconds,
                                 retries=self._config.max_retries,
                                 secrets=[self._config.api_key]) from None
        except ValueError as exc:  # the SDK's own refusals (e.g. a max_tokens it won't send)
            raise ProviderError(f"The {VENDOR} SDK refused the request: "
                                f"{_sdk.scrub(str(exc), [self._config.api_key])}",
                                kind="bad_request") from None
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = block.input
                if not isinstance(arguments, dict):
                    raise ProviderError(f"The model called tool {block.name!r} with input that "
                                        "is not a JSON object.", kind="model")
                calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(arguments)))
        usage = response.usage
        return ModelResponse(
            message=Message(role="assistant", content="".join(texts), tool_calls=tuple(calls)),
            usage=Usage(input_tokens=usage.input_tokens or 0,
                        output_tokens=usage.output_tokens or 0),
            model=response.model or request.model,
            stop_reason=response.stop_reason or "",
        )
