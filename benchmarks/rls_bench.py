"""Figure 2: the same SELECT with row-level security on vs off, on the same table.

- on:  the app role (NOBYPASSRLS, owns nothing) with `app.org_id` set; the policy
       `organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid` applies.
- off: the owner role on the same table after `NO FORCE ROW LEVEL SECURITY` (throwaway
       database only), so no policy applies. Same rows, same pages, same indexes, same server.

The SQL text is what the ORM writes (`Environment` filtered by `organization_id`), sent with a
client-side-binding cursor as Django's psycopg backend does by default, so each execution is
parsed and planned like the app's queries. On and off alternate every iteration.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg

from benchmarks.db import RlsSeed, conninfo
from benchmarks.stats import Summary


@dataclass(frozen=True)
class QueryResult:
    name: str
    description: str
    sql: str
    rows: int
    on: Summary
    off: Summary
    plan_on: str
    plan_off: str

    @property
    def ratio_mean(self) -> float:
        return self.on.mean / self.off.mean

    @property
    def ratio_median(self) -> float:
        return self.on.median / self.off.median


def _orm_sql(org_id: uuid.UUID, page: bool) -> tuple[str, list[Any]]:
    from tenants.models import Environment

    qs = Environment.all_orgs.filter(organization_id=org_id)
    if page:  # the first page of GET /api/v1/environments: cursor pagination reads size + 1
        qs = qs.order_by("-created_at", "-id")[:51]
    query, params = qs.query.sql_with_params()
    return query, list(params)


def _connect(alias: str) -> psycopg.Connection[Any]:
    return psycopg.connect(**conninfo(alias), autocommit=True, cursor_factory=psycopg.ClientCursor)


def _select(cur: psycopg.Cursor[Any], query: str, params: list[Any]) -> int:
    cur.execute(query, params)
    return len(cur.fetchall())


def _plan(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> str:
    rows = conn.execute("EXPLAIN (COSTS OFF) " + query, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def _bench(
    name: str, description: str, query: str, params: list[Any],
    on: Callable[[], int], off: Callable[[], int], plan_on: str, plan_off: str,
    *, warmup: int, iterations: int, seconds: float,
) -> QueryResult:
    for _ in range(warmup):
        on()
        off()
    clock = time.perf_counter_ns
    samples_on: list[int] = []
    samples_off: list[int] = []
    rows = 0
    deadline = clock() + int(seconds * 1e9)
    for i in range(iterations):
        if i >= 50 and clock() > deadline:
            break
        pair = ((on, samples_on), (off, samples_off))
        for fn, samples in pair if i % 2 == 0 else reversed(pair):
            start = clock()
            rows = fn()
            samples.append(clock() - start)
    return QueryResult(
        name=name, description=description, sql=query, rows=rows,
        on=Summary.of(samples_on), off=Summary.of(samples_off),
        plan_on=plan_on, plan_off=plan_off,
    )


def run(seed: RlsSeed, *, warmup: int, iterations: int, seconds: float) -> list[QueryResult]:
    """Each query: `iterations` on/off pairs, or fewer if `seconds` run out first."""
    org = seed.target_org
    results: list[QueryResult] = []
    with _connect("default") as app, _connect("bare") as owner:
        # A session-level setting on this private connection, so that only the SELECT is timed.
        # (The app sets it transaction-locally; that cost is measured separately below.)
        app.execute("SELECT set_config('app.org_id', %s, false)", [str(org)])
        app_cur, owner_cur = app.cursor(), owner.cursor()

        for name, description, page in (
            ("org_rows", f"all rows of one org ({seed.rows_per_org} of {seed.rows})", False),
            ("api_page", "first API page: ORDER BY created_at DESC, id DESC LIMIT 51", True),
        ):
            query, params = _orm_sql(org, page)

            on = partial(_select, app_cur, query, params)
            off = partial(_select, owner_cur, query, params)
            if on() != off():
                raise SystemExit(f"benchmarks: RLS on/off returned different rows for {name}")
            results.append(_bench(
                name, description, query, params, on, off,
                _plan(app, query, params), _plan(owner, query, params),
                warmup=warmup, iterations=iterations, seconds=seconds,
            ))

        # As the app runs it: a transaction that sets the org, then the page query, vs the same
        # transaction without RLS or the set_config round trip.
        query, params = _orm_sql(org, True)

        def app_style() -> int:
            with app.transaction():
                app_cur.execute("SELECT set_config('app.org_id', %s, true)", [str(org)])
                app_cur.execute(query, params)
                return len(app_cur.fetchall())

        def plain_txn() -> int:
            with owner.transaction():
                owner_cur.execute(query, params)
                return len(owner_cur.fetchall())

        results.append(_bench(
            "api_page_txn",
            "API page in a transaction; on = BEGIN + set_config + SELECT + COMMIT, "
            "off = BEGIN + SELECT + COMMIT",
            query, params, app_style, plain_txn, "(as api_page)", "(as api_page)",
            warmup=warmup, iterations=iterations, seconds=seconds,
        ))
    return results
