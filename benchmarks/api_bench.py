"""Figure 1: GET /api/v1/environments through the full stack vs a bare DRF list view.

Both run in this process through one `WSGIHandler` (the production entry point: middleware,
request_started/finished signals, connection health checks, ATOMIC_REQUESTS), with no network.
A third variant, the bare view through a handler with no middleware at all, is a reference.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.db import ApiSeed
from benchmarks.stats import Summary
from benchmarks.urls import BARE_PATH

FULL_PATH = "/api/v1/environments"


@dataclass
class Variant:
    name: str
    label: str
    call: Callable[[], tuple[str, bytes]]
    samples: list[int] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class ApiResult:
    rows_per_page: int
    full: tuple[float, Summary]
    bare: tuple[float, Summary]
    bare_no_middleware: tuple[float, Summary]
    round_ratios: list[float]
    queries_full: list[str]
    queries_bare: list[str]
    breakdown: list[tuple[str, float, float]]  # (part, full ms, bare ms) per request
    round_trip: Summary  # `SELECT 1` on the app connection

    @property
    def ratio(self) -> float:
        return self.full[0] / self.bare[0]

    @property
    def ratio_median(self) -> float:
        """bare / full median latency: the same ratio, less sensitive to stalls."""
        return self.bare[1].median / self.full[1].median

    @property
    def ratio_no_middleware(self) -> float:
        return self.full[0] / self.bare_no_middleware[0]


def _environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost",
        "HTTP_ACCEPT": "application/json",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    environ.update(headers)
    return environ


def _caller(handler: Any, path: str, headers: dict[str, str]) -> Callable[[], tuple[str, bytes]]:
    template = _environ(path, headers)

    def call() -> tuple[str, bytes]:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        status: list[str] = []

        def start_response(s: str, _headers: Any, _exc: Any = None) -> Callable[..., None]:
            status.append(s)
            return lambda _data: None

        result = handler(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()  # sends request_finished, as a WSGI server does
        return status[0], body

    return call


def _check(variant: Variant) -> list[str]:
    status, body = variant.call()
    if not status.startswith("200"):
        raise SystemExit(f"benchmarks: {variant.label} answered {status}: {body[:500]!r}")
    return [row["id"] for row in json.loads(body)["results"]]


def _statements(call: Callable[[], object],
                params: list[Any] | None = None) -> list[str]:
    """Every statement one request sends, seen at the psycopg level (so the org guard's
    `set_config` and the health check's `SELECT 1` are included), with its role."""
    import psycopg
    from django.db import connections

    roles = {"default": "app", "bare": "owner"}
    seen: list[str] = []
    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, params_: Any = None, **kwargs: Any) -> Any:
        role = next((roles[a] for a in roles if connections[a].connection is self.connection),
                    "?")
        text = query if isinstance(query, str) else repr(query)
        seen.append(f"[{role}] {text}")
        if params is not None:
            params.append(params_)
        return original(self, query, params_, **kwargs)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign,assignment]
    try:
        call()
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
    return seen


def round_trips(statements: list[str]) -> int:
    """Statements, plus the BEGIN and COMMIT psycopg sends on each connection that ran one
    inside the request transaction (health checks run before it, outside)."""
    in_txn = {s.split("]")[0] for s in statements if not s.endswith("SELECT 1")}
    return len(statements) + 2 * len(in_txn)


BREAKDOWN_PARTS = (
    ("authentication", "rest_framework.views:APIView.perform_authentication"),
    ("permission check", "rest_framework.views:APIView.check_permissions"),
    ("list: query + pagination + serializer", "rest_framework.mixins:ListModelMixin.list"),
    ("DRF dispatch", "rest_framework.views:APIView.dispatch"),
)


def _breakdown(full: Callable[[], object], bare: Callable[[], object],
               requests: int) -> list[tuple[str, float, float]]:
    """Mean ms per request in each part, timed by wrapping DRF methods (after the timed
    rounds, so the wrappers never touch the headline figure). Full and bare requests
    alternate, so both see the same background load."""
    import importlib
    import time

    totals: dict[str, dict[str, int]] = {"full": {}, "bare": {}}
    walls = {"full": 0, "bare": 0}
    current = ["full"]
    patched: list[tuple[type, str, Any]] = []
    for label, target in BREAKDOWN_PARTS:
        module, qualname = target.split(":")
        cls_name, attr = qualname.split(".")
        cls = getattr(importlib.import_module(module), cls_name)
        original = cls.__dict__[attr]

        def wrapper(self: Any, *args: Any, _f: Any = original, _l: str = label,
                    **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return _f(self, *args, **kwargs)
            finally:
                bucket = totals[current[0]]
                bucket[_l] = bucket.get(_l, 0) + time.perf_counter_ns() - start

        setattr(cls, attr, wrapper)
        patched.append((cls, attr, original))
    try:
        pair = (("full", full), ("bare", bare))
        for i in range(requests):
            for name, call in pair if i % 2 == 0 else reversed(pair):
                current[0] = name
                start = time.perf_counter_ns()
                call()
                walls[name] += time.perf_counter_ns() - start
        means: dict[str, dict[str, float]] = {}
        for name in walls:
            wall = walls[name] / requests / 1e6
            parts = {k: v / requests / 1e6 for k, v in totals[name].items()}
            dispatch = parts.pop("DRF dispatch", 0.0)
            parts["rest of DRF (initial, finalize, render)"] = dispatch - sum(parts.values())
            parts["outside DRF (middleware, routing, transaction, health check)"] = (
                wall - dispatch
            )
            parts["total"] = wall
            means[name] = parts
    finally:
        for cls, attr, original in patched:
            setattr(cls, attr, original)
    return [(part, means["full"].get(part, 0.0), means["bare"].get(part, 0.0))
            for part in means["full"]]


def _round_trip(samples: int) -> Summary:
    import time

    from django.db import connections

    conn = connections["default"]
    conn.ensure_connection()
    raw = conn.connection
    assert raw is not None
    timings: list[int] = []
    with raw.cursor() as cursor:
        for _ in range(samples):
            start = time.perf_counter_ns()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            timings.append(time.perf_counter_ns() - start)
    if not conn.get_autocommit():
        raw.rollback()
    return Summary.of(timings)


def _interleaved(order: list[Variant], seconds: float) -> dict[str, float]:
    """Call each variant in turn for about `seconds` in all; req/s of each over the time spent
    in its own calls (also added to the variant's totals and latency samples)."""
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    spent = dict.fromkeys((v.name for v in order), 0)
    calls = dict.fromkeys(spent, 0)
    while clock() < deadline:
        for variant in order:
            before = clock()
            variant.call()
            took = clock() - before
            variant.samples.append(took)
            spent[variant.name] += took
            calls[variant.name] += 1
    for variant in order:
        variant.calls += calls[variant.name]
        variant.seconds += spent[variant.name] / 1e9
    return {name: calls[name] / (spent[name] / 1e9) for name in spent}


def run(seed: ApiSeed, *, rounds: int, seconds: float, warmup: int,
        breakdown_requests: int) -> ApiResult:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    from benchmarks.views import BareEnvironmentList

    BareEnvironmentList.org_id = seed.org_a
    handler = WSGIHandler()
    with override_settings(MIDDLEWARE=[]):
        bare_handler = WSGIHandler()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {seed.api_key}"}
    full = Variant("full", "full stack", _caller(handler, FULL_PATH, auth))
    bare = Variant("bare", "bare view", _caller(handler, BARE_PATH, {}))
    bare_nomw = Variant("bare_nomw", "bare view, no middleware",
                        _caller(bare_handler, BARE_PATH, {}))
    variants = [full, bare, bare_nomw]

    ids = _check(full)
    for other in (bare, bare_nomw):
        if _check(other) != ids:
            raise SystemExit(f"benchmarks: {other.label} did not return the full view's rows")
    if len(ids) != seed.per_org:
        raise SystemExit(f"benchmarks: expected {seed.per_org} rows per page, got {len(ids)}")

    for variant in variants:
        for _ in range(warmup):
            variant.call()
    queries_full = _statements(full.call)
    queries_bare = _statements(bare.call)

    round_ratios: list[float] = []
    for r in range(rounds):
        # The variants take turns call by call (not in blocks of `seconds`), so a stall or
        # load from elsewhere on a shared machine falls on all of them alike; the order of
        # the turn rotates every round.
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        per_round = _interleaved(order, seconds * len(order))
        round_ratios.append(per_round["full"] / per_round["bare"])

    breakdown = _breakdown(full.call, bare.call, breakdown_requests)
    round_trip = _round_trip(max(100, warmup * 20))

    def result(v: Variant) -> tuple[float, Summary]:
        return v.rps, Summary.of(v.samples)

    return ApiResult(
        rows_per_page=len(ids),
        full=result(full),
        bare=result(bare),
        bare_no_middleware=result(bare_nomw),
        round_ratios=round_ratios,
        queries_full=queries_full,
        queries_bare=queries_bare,
        breakdown=breakdown,
        round_trip=round_trip,
    )
