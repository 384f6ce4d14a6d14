"""The one interface every LLM provider implements: messages + tool definitions in, an
assistant message (text and/or tool calls) + token usage out.

The run loop speaks only these types; `station.providers.registry.build()` turns a provider
connection (kind, base URL, resolved API key, timeout, retries) into an implementation. Values
here are plain JSON-able data so a conversation can be stored in run steps and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it. `name` is the model-facing name (`server__tool`)."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]),
                   arguments=dict(data.get("arguments") or {}))


@dataclass(frozen=True)
class Message:
    """One conversation message. `tool` messages answer the call `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.tool_call_id:
            data["tool_call_id"] = self.tool_call_id
        if self.is_error:
            data["is_error"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(role=data["role"], content=str(data.get("content") or ""),
                   tool_calls=tuple(ToolCall.from_json(c) for c in data.get("tool_calls", [])),
                   tool_call_id=str(data.get("tool_call_id") or ""),
                   is_error=bool(data.get("is_error", False)))


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    # Provider parameters from the agent (temperature, max_output_tokens, …; the scripted
    # provider's `scenario`).
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelResponse:
    message: Message  # role "assistant"
    usage: Usage
    model: str = ""
    stop_reason: str = ""


ErrorKind = Literal["auth", "model", "rate_limit", "server", "timeout", "connection",
                    "bad_request", "config"]


class ProviderError(Exception):
    """A provider call that failed after the provider's own retries, with a message fit to
    show an admin (never a credential). `kind` says what to fix."""

    def __init__(self, message: str, *, kind: ErrorKind, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class ProviderConfig:
    """A provider connection with its credential resolved (worker memory only)."""

    kind: str  # "openai" | "anthropic" | "scripted"
    base_url: str = ""
    api_key: str = ""
    timeout_seconds: float = 60.0
    max_retries: int = 2


class LLMProvider(Protocol):
    def complete(self, request: ModelRequest) -> ModelResponse:
        """One model call. Raises ProviderError."""
        ...

    def close(self) -> None:
        """Release the provider's connections (the run is over)."""
        ...
