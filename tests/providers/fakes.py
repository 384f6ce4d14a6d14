"""Loopback fakes of the OpenAI and Anthropic HTTP APIs, for tests and benchmarks.

Each fake is a small threaded HTTP server on 127.0.0.1 (an ephemeral port) speaking the real
wire protocol: OpenAI `POST /v1/chat/completions` and Anthropic `POST /v1/messages`, with the
real JSON shapes, error bodies, status codes and a `retry-after` header on 429. The official
SDKs talk to them unchanged (`base_url=fake.base_url`).

Script a fake with a queue of replies (`fake.push(fake.text("hi"), fake.rate_limited(), ...)`);
each request takes the next one, and an empty queue answers `default` (a short text). Every
request is recorded (`fake.requests`: path, lower-cased headers, JSON body) so tests can check
what the SDK sent: tools, system prompt, tool results, auth header (the Anthropic SDK 2.x sends
its key as `Authorization: Bearer`, the API also takes `x-api-key`). Given `api_key`, a fake
answers 401 (echoing the key it got, as careless proxies do) to any other credential.

Both fakes also enforce the protocol rules a provider implementation most easily breaks: every
assistant tool call must be answered by the next message(s) (400 otherwise), and Anthropic's
`max_tokens` is required.

    with OpenAIFake() as fake:
        fake.push(fake.tool_calls(("clock__now", {"tz": "UTC"})), fake.text("done"))
        client = openai.OpenAI(api_key="k", base_url=fake.base_url)
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Body = dict[str, Any] | Callable[["Recorded"], dict[str, Any]]


@dataclass
class Reply:
    status: int = 200
    body: Body = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow provider)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def json(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.body
        return self.body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeAPI:
    """The server machinery; subclasses speak one protocol."""

    path = ""
    root = ""  # what base_url ends with

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ids = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.root

    def close(self) -> None:
        self._closed.set()  # wakes slow replies
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scripting -------------------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    def slow(self, seconds: float, then: Reply | None = None) -> Reply:
        reply = then or self.text("too late")
        return Reply(reply.status, reply.body, reply.headers, delay=seconds)

    def default(self) -> Reply:
        return self.text("OK")

    # --- protocol hooks --------------------------------------------------------------------

    def text(self, content: str, **usage: int) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str, *, type: str = "",
              headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def authenticate(self, request: Recorded) -> Reply | None:
        raise NotImplementedError

    def check(self, request: Recorded) -> Reply | None:
        """A 400 for a request that breaks the protocol, else None."""
        return None

    # --- HTTP ------------------------------------------------------------------------------

    def _answer(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path.split("?")[0] != self.path:
            return self.error(404, f"Unknown request URL: {request.method} {request.path}.",
                              type="not_found_error")
        if not isinstance(request.body, dict):
            return self.error(400, "We could not parse the JSON body of your request.",
                              type="invalid_request_error")
        if (refused := self.authenticate(request)) is not None:
            return refused
        if (broken := self.check(request)) is not None:
            return broken
        with self._lock:
            return self._queue.popleft() if self._queue else self.default()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet tests

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                request = Recorded(self.command, self.path,
                                   {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(request)
                reply = fake._answer(request)
                if reply.delay and fake._closed.wait(reply.delay):
                    return
                payload = reply.body(request) if callable(reply.body) else reply.body
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = _serve
            do_GET = _serve

        return Handler


# --- OpenAI -------------------------------------------------------------------------------


class OpenAIFake(FakeAPI):
    """`POST /v1/chat/completions`; `base_url` ends in `/v1` like OpenAI's."""

    path = "/v1/chat/completions"
    root = "/v1"

    def _completion(self, request: Recorded, message: dict[str, Any], finish: str,
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {
            "id": self.next_id("chatcmpl-fake"), "object": "chat.completion",
            "created": 1_700_000_000, "model": request.json.get("model", ""),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def text(self, content: str, prompt_tokens: int = 11,  # type: ignore[override]
             completion_tokens: int = 7) -> Reply:
        return Reply(body=lambda r: self._completion(
            r, {"role": "assistant", "content": content, "refusal": None}, "stop",
            prompt_tokens, completion_tokens))

    def tool_calls(self, *calls: tuple[str, dict[str, Any] | str], content: str | None = None,
                   prompt_tokens: int = 13, completion_tokens: int = 9) -> Reply:
        """Tool calls; give arguments as a dict, or as raw text (to send broken JSON)."""
        def body(request: Recorded) -> dict[str, Any]:
            wire = [{"id": self.next_id("call_fake"), "type": "function",
                     "function": {"name": name, "arguments": args if isinstance(args, str)
                                  else json.dumps(args)}} for name, args in calls]
            return self._completion(request, {"role": "assistant", "content": content,
                                              "refusal": None, "tool_calls": wire},
                                    "tool_calls", prompt_tokens, completion_tokens)

        return Reply(body=body)

    def error(self, status: int, message: str, *, type: str = "",
              code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        default_type = {400: "invalid_request_error", 401: "invalid_request_error",
                        404: "invalid_request_error", 429: "requests",
                        500: "server_error"}.get(status, "api_error")
        return Reply(status, {"error": {"message": message, "type": type or default_type,
                                        "param": None, "code": code}},
                     {"x-request-id": "req_fake", **(headers or {})})

    def rate_limited(self, retry_after: str = "0.01") -> Reply:
        return self.error(429, "Rate limit reached for requests per min (RPM): Limit 3, "
                          "Used 3, Requested 1.", code="rate_limit_exceeded",
                          headers={"retry-after": retry_after})

    def server_error(self, status: int = 500) -> Reply:
        return self.error(status, "The server had an error while processing your request.")

    def unauthorized(self) -> Reply:
        return Reply(401, lambda r: {"error": {
            "message": f"Incorrect API key provided: {_bearer(r)}. You can find your API key "
                       "at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})

    def unknown_model(self) -> Reply:
        return Reply(404, lambda r: {"error": {
            "message": f"The model `{r.json.get('model')}` does not exist or you do not have "
                       "access to it.", "type": "invalid_request_error", "param": None,
            "code": "model_not_found"}})

    def authenticate(self, request: Recorded) -> Reply | None:
        if self.api_key is None or _bearer(request) == self.api_key:
            return None
        return self.unauthorized()

    def check(self, request: Recorded) -> Reply | None:
        body = request.json
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return self.error(400, "you must provide a model parameter and messages")
        messages = body["messages"]
        for index, message in enumerate(messages):
            ids = [c["id"] for c in message.get("tool_calls") or []]
            answered = []
            for follower in messages[index + 1:]:
                if follower.get("role") != "tool":
                    break
                answered.append(follower.get("tool_call_id"))
            if message.get("role") == "assistant" and set(ids) - set(answered):
                return self.error(400, "An assistant message with 'tool_calls' must be "
                                  "followed by tool messages responding to each "
                                  f"'tool_call_id'. The following tool_call_ids did not have "
                                  f"response messages: {sorted(set(ids) - set(answered))}")
        return None


def _bearer(request: Recorded) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


# --- Anthropic ----------------------------------------------------------------------------


class AnthropicFake(FakeAPI):
    """`POST /v1/messages`; `base_url` is the origin, like `https://api.anthropic.com`."""

    path = "/v1/messages"
    root = ""

    def _message(self, request: Recorded, content: list[dict[str, Any]], stop: str,
                 input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.next_id("msg_fake"), "type": "message", "role": "assistant",
            "model": request.json.get("model", ""), "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def text(self, content: str, input_tokens: int = 17,  # type: ignore[override]
             output_tokens: int = 5) -> Reply:
        return Reply(body=lambda r: self._message(r, [{"type": "text", "text": content}],
                                                  "end_turn", input_tokens, output_tokens))

    def tool_calls(self, *calls: tuple[str, dict[str, Any]], content: str | None = None,
                   input_tokens: int = 19, output_tokens: int = 8) -> Reply:
        def body(request: Recorded) -> dict[str, Any]:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            blocks += [{"type": "tool_use", "id": self.next_id("toolu_fake"), "name": name,
                        "input": args} for name, args in calls]
            return self._message(request, blocks, "tool_use", input_tokens, output_tokens)

        return Reply(body=body)

    def error(self, status: int, message: str, *, type: str = "",
              headers: dict[str, str] | None = None) -> Reply:
        default_type = {400: "invalid_request_error", 401: "authentication_error",
                        403: "permission_error", 404: "not_found_error",
                        429: "rate_limit_error", 529: "overloaded_error"}.get(status,
                                                                             "api_error")
        return Reply(status, {"type": "error", "error": {"type": type or default_type,
                                                         "message": message},
                              "request_id": "req_fake"},
                     {"request-id": "req_fake", **(headers or {})})

    def rate_limited(self, retry_after: str = "0.01") -> Reply:
        return self.error(429, "This request would exceed the rate limit for your "
                          "organization of 50 requests per minute.",
                          headers={"retry-after": retry_after})

    def server_error(self, status: int = 500) -> Reply:
        return self.error(status, "Overloaded" if status == 529 else "Internal server error")

    def unauthorized(self) -> Reply:
        return Reply(401, lambda r: {"type": "error", "error": {
            "type": "authentication_error",
            "message": f"invalid x-api-key: {_anthropic_key(r)}"}})

    def unknown_model(self) -> Reply:
        return Reply(404, lambda r: {"type": "error", "error": {
            "type": "not_found_error", "message": f"model: {r.json.get('model')}"}})

    def authenticate(self, request: Recorded) -> Reply | None:
        if "anthropic-version" not in request.headers:
            return self.error(400, "anthropic-version: header is required")
        if self.api_key is None or _anthropic_key(request) == self.api_key:
            return None
        return self.unauthorized()

    def check(self, request: Recorded) -> Reply | None:
        body = request.json
        if "max_tokens" not in body:
            return self.error(400, "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "messages: at least one message is required")
        for index, message in enumerate(messages):
            if message.get("role") not in ("user", "assistant"):
                return self.error(400, f"messages.{index}.role: Input should be 'user' or "
                                  "'assistant'")
            content = message.get("content")
            blocks = content if isinstance(content, list) else []
            for block in blocks:
                if block.get("type") == "text" and not block.get("text"):
                    return self.error(400, f"messages.{index}: text content blocks must be "
                                      "non-empty")
            uses = {b["id"] for b in blocks if b.get("type") == "tool_use"}
            if not uses:
                continue
            following = messages[index + 1] if index + 1 < len(messages) else None
            after = following.get("content") if following else None
            results = [b.get("tool_use_id") for b in after if b.get("type") == "tool_result"
                       ] if isinstance(after, list) else []
            if following is None or following.get("role") != "user" or uses - set(results):
                return self.error(400, f"messages.{index + 1}: `tool_use` ids were found "
                                  "without `tool_result` blocks immediately after: "
                                  f"{', '.join(sorted(uses - set(results)))}. Each `tool_use` "
                                  "block must have a corresponding `tool_result` block in the "
                                  "next message.")
        return None


def _anthropic_key(request: Recorded) -> str:
    """The API takes the key as `x-api-key` or (what SDK 2.x sends) a bearer token."""
    return request.headers.get("x-api-key") or _bearer(request)
