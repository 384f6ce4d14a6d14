"""What the OpenAI and Anthropic providers share: both official SDKs are generated from the
same template (Stainless), so their errors have the same shape (`APIStatusError` with a status
code and a decoded body, `APITimeoutError` under `APIConnectionError`). Here those errors become
ProviderErrors an admin can act on, and never carry the credential.

Server messages are quoted (shortened) where they help (a 400 says which parameter is wrong),
after removing the key and anything shaped like one: OpenAI's 401 echoes a masked key, and a
proxy may echo more. Auth failures quote nothing at all.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

from station.core import egress
from station.providers.base import ErrorKind, ProviderError, ToolSpec

_MAX_QUOTE = 300
# TCP keepalive, as the Anthropic SDK sets on its own transport: a long non-streaming call
# must not lose an idle connection in a NAT or load balancer.
_KEEPALIVE = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
              *((socket.IPPROTO_TCP, getattr(socket, name), value)
                for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60),
                                    ("TCP_KEEPCNT", 5)) if hasattr(socket, name))]


def http_client(default_client: Any, base_url: str) -> Any:
    """The SDK's own client class and defaults, on a transport that connects only where
    the operator's rule allows (station.core.egress); when an environment proxy applies,
    the SDK's usual transport (the proxy decides)."""
    transport = egress.pinned_transport(base_url, egress.is_reachable_for_tools,
                                        socket_options=_KEEPALIVE)
    return default_client(transport=transport) if transport is not None else default_client()

# Key-shaped tokens, masked or not: sk-…, sk-proj-…, sk-ant-…, and long opaque strings.
_KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{4,}|\b[A-Za-z0-9_\-]{32,}\b")


def scrub(text: str, secrets: list[str]) -> str:
    """`text` without the credential (or key-shaped tokens), on one line, shortened."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = _KEYLIKE.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"


def server_message(body: object) -> str:
    """The human message inside an error body: OpenAI `{"error": {"message"}}`, Anthropic
    `{"type": "error", "error": {"type", "message"}}`, or a bare `{"message"}` / text."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
        return ""
    return body if isinstance(body, str) else ""


def status_error(status: int, body: object, *, vendor: str, model: str, retries: int,
                 secrets: list[str]) -> ProviderError:
    quoted = scrub(server_message(body), secrets)
    says = f": {quoted}" if quoted else "."
    kind: ErrorKind
    if status in (401, 403):
        kind = "auth"
        message = (f"The {vendor} refused the credentials (HTTP {status}): check the API key "
                   "secret this connection references, and that the key may use this model.")
    elif status == 404:
        kind = "model"
        message = (f"Unknown model {model!r} (HTTP 404 from the {vendor}){says} Check the agent's "
                   "model name, and that the connection's base URL is the API root.")
    elif status == 429:
        kind = "rate_limit"
        message = f"The {vendor} rate limit was still hit after {retries} retries (HTTP 429){says}"
    elif status == 408:
        kind = "timeout"
        message = f"The {vendor} timed out the request (HTTP 408) after {retries} retries{says}"
    elif status >= 500:
        kind = "server"
        message = f"The {vendor} failed (HTTP {status}) after {retries} retries{says}"
    else:
        kind = "bad_request"
        message = f"The {vendor} rejected the request (HTTP {status}){says}"
    return ProviderError(message, kind=kind, status=status)


def sdk_error(exc: Exception, sdk: Any, *, vendor: str, model: str, timeout: float,
              retries: int, secrets: list[str]) -> ProviderError:
    """A ProviderError for an exception raised by the `openai` or `anthropic` module `sdk`."""
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(f"The {vendor} did not answer within {timeout:g} s "
                             f"(tried {retries + 1} time{'s' * (retries > 0)}).", kind="timeout")
    if isinstance(exc, sdk.APIConnectionError):
        cause = scrub(str(exc.__cause__ or exc), secrets)
        return ProviderError(f"Could not reach the {vendor} at the connection's base URL "
                             f"(tried {retries + 1} time{'s' * (retries > 0)}): {cause}",
                             kind="connection")
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc.status_code, exc.body, vendor=vendor, model=model,
                            retries=retries, secrets=secrets)
    # APIResponseValidationError and the like: the server answered something unusable.
    return ProviderError(f"The {vendor} returned an unusable response: "
                         f"{scrub(str(exc), secrets) or type(exc).__name__}", kind="server")


def object_schema(spec: ToolSpec) -> dict[str, Any]:
    """A tool's input schema as both APIs require it: a JSON-schema object."""
    schema = dict(spec.input_schema or {})
    schema.setdefault("type", "object")
    if schema["type"] == "object":
        schema.setdefault("properties", {})
    return schema


def parse_arguments(raw: str | None, *, tool: str, vendor: str) -> dict[str, Any]:
    """A tool call's arguments (a JSON object as text). Models do emit broken JSON now and
    then: that is a ProviderError (kind `model`) naming the tool, not a crash."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProviderError(
            f"The model called tool {tool!r} with malformed JSON arguments ({exc.msg} at "
            f"character {exc.pos}): {raw[:200]!r}. The {vendor} returned it as is; retry the run "
            "or use a model that follows tool schemas more reliably.", kind="model") from None
    if not isinstance(value, dict):
        raise ProviderError(
            f"The model called tool {tool!r} with arguments that are not a JSON object "
            f"({type(value).__name__}): {raw[:200]!r}.", kind="model")
    return value


def pick(parameters: dict[str, Any], allowed: dict[str, str]) -> dict[str, Any]:
    """The agent parameters this API takes, renamed to its field names (`allowed` maps an
    agent parameter to the API field). Others (e.g. the scripted `scenario`) stay behind."""
    out: dict[str, Any] = {}
    for name, field in allowed.items():
        if name in parameters and parameters[name] is not None and field not in out:
            out[field] = parameters[name]
    return out
