"""Entry point: `.venv/bin/python -m benchmarks.run [--quick]`.

Creates a throwaway database, migrates and seeds it, measures both figures, prints them, and
(without --quick) rewrites benchmarks/RESULTS.md. The database is dropped at the end, and an
embedded server this run started is stopped. Nothing here asserts anything about speed.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from benchmarks.runs_bench import RunsPlan

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    api_envs_per_org: int
    api_rounds: int
    api_seconds: float
    api_warmup: int
    api_breakdown_requests: int
    rls_orgs: int
    rls_rows_per_org: int
    rls_warmup: int
    rls_iterations: int
    rls_seconds: float  # time budget per query; stops before rls_iterations if reached


FULL = Plan(api_envs_per_org=50, api_rounds=5, api_seconds=2.0, api_warmup=50,
            api_breakdown_requests=300,
            rls_orgs=100, rls_rows_per_org=1000, rls_warmup=100, rls_iterations=3000,
            rls_seconds=12.0)
QUICK = Plan(api_envs_per_org=50, api_rounds=1, api_seconds=0.25, api_warmup=5,
             api_breakdown_requests=10,
             rls_orgs=20, rls_rows_per_org=100, rls_warmup=10, rls_iterations=100,
             rls_seconds=0.5)


# Figures 3 and 4 (run engine): bursts, one-at-a-time samples and tool calls per side.
FULL_RUNS = RunsPlan(rounds=3, raw_tasks=400, runs=60, latency_samples=100, tool_rounds=6,
                     tool_calls=150)
QUICK_RUNS = RunsPlan(rounds=1, raw_tasks=40, runs=6, latency_samples=4, tool_rounds=2,
                      tool_calls=15)
RUNS_BUDGET = {True: 120.0, False: 600.0}  # seconds for figure 3, quick / full


def _environment() -> None:
    """Before Django reads settings: own data dir, app role, no debug, benchmark settings."""
    os.environ.setdefault("STATION_DATA_DIR", str(REPO / "var" / "bench"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["STATION_DB_ROLE"] = "app"
    os.environ["STATION_DEBUG"] = "false"
    # Quiet, harmless warnings: whitenoise wants STATIC_ROOT to exist, platformdirs wants
    # XDG_RUNTIME_DIR (the test suite filters the same one).
    (Path(os.environ["STATION_DATA_DIR"]) / "static").mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs.*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: tiny data, short timings, RESULTS.md untouched")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    runs_plan = QUICK_RUNS if args.quick else FULL_RUNS
    began = time.monotonic()

    _environment()
    from benchmarks import db

    server = db.start_server()
    try:
        import django

        django.setup()
        from benchmarks.settings import BENCH_DATABASE_NAME

        db.bootstrap_external_roles()
        db.check_roles()
        print(f"benchmarks: database {BENCH_DATABASE_NAME!r} "
              f"({'embedded, ' + str(server.root) if server.embedded else 'DATABASE_URL'})",
              flush=True)
        db.create_database()
        try:
            return _measure(plan, runs_plan, quick=args.quick, embedded=server.embedded,
                            began=began)
        finally:
            db.drop_database()
    finally:
        db.stop_server(server)


def _measure(plan: Plan, runs_plan: RunsPlan, *, quick: bool, embedded: bool,
             began: float) -> int:
    from benchmarks import api_bench, db, report, rls_bench, runs_bench

    step = time.monotonic()
    db.migrate()
    db.lift_force_for_owner(["tenants_organization", "tenants_environment"])
    api_seed = db.seed_api(plan.api_envs_per_org)
    rls_seed = db.seed_rls(plan.rls_orgs, plan.rls_rows_per_org)
    machine = report.machine(db.server_version(), embedded)
    print(f"benchmarks: migrated and seeded in {time.monotonic() - step:.1f} s", flush=True)

    step = time.monotonic()
    api = api_bench.run(api_seed, rounds=plan.api_rounds, seconds=plan.api_seconds,
                        warmup=plan.api_warmup, breakdown_requests=plan.api_breakdown_requests)
    print(f"benchmarks: figure 1 in {time.monotonic() - step:.1f} s", flush=True)
    step = time.monotonic()
    rls = rls_bench.run(rls_seed, warmup=plan.rls_warmup, iterations=plan.rls_iterations,
                        seconds=plan.rls_seconds)
    print(f"benchmarks: figure 2 in {time.monotonic() - step:.1f} s", flush=True)
    step = time.monotonic()
    runs = runs_bench.run(runs_plan, budget=RUNS_BUDGET[quick])
    print(f"benchmarks: figures 3 and 4 in {time.monotonic() - step:.1f} s", flush=True)

    print()
    print(report.console(machine, api, rls))
    print(runs_bench.console(runs))
    if quick:
        print("\n(quick mode: RESULTS.md not written)")
        return 0
    path = report.write(report.markdown(
        machine, api, api_seed, rls, rls_seed, runs, api_rounds=plan.api_rounds,
        api_seconds=plan.api_seconds,
        elapsed=time.monotonic() - began,
    ))
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
