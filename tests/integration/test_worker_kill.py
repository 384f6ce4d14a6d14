"""Runs survive worker deaths: real `station worker` subprocesses on a real broker, killed with
SIGKILL (the whole process group) mid-run, a new worker, and the reaper (called here, as beat
would) retrying stale runs. Also: a hanging MCP server does not wedge a worker.

The broker is a private embedded Valkey for this module (or CELERY_BROKER_URL when set), so
another pytest process on the machine, with its own database, never consumes these messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connections, transaction

from audit.models import AuditEvent
from station.agents.models import Agent, AgentVersion
from station.celery import app
from station.providers.models import ModelProvider
from station.runs import lifecycle, services
from station.runs.models import ActiveRun, Run, RunStep
from station.testing.celery import point_celery_at
from station.tools import discovery
from station.tools import services as tools
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parents[2]
TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
HEARTBEAT, STALE, MAX_ATTEMPTS, CALL_TIMEOUT, CONNECT_TIMEOUT = 1, 4, 3, 2, 4

CLOCK = "clock__get_current_time"
SCENARIO = [
    {"tool_calls": [{"name": CLOCK, "arguments": {"timezone": "UTC"}}], "delay_seconds": 0.3},
    {"tool_calls": [{"name": CLOCK, "arguments": {"timezone": "Europe/Paris"}}],
     "delay_seconds": 0.5},
    {"content": "done: {input}", "delay_seconds": 0.8},
]
KINDS = ["model", "tool", "model", "tool", "model"]

# Writes its pid where the test can find it (the SDK starts servers in their own session,
# so killing a worker's process group does not reach them). Its tool hangs; and once the file
# named by its second argument exists, it hangs at start, before answering `initialize`.
HANG_SERVER = '''
import os, sys, time
from mcp.server.mcpserver import MCPServer

server = MCPServer("stuck")


@server.tool(description="Never answer.")
def hang() -> str:
    time.sleep(120)
    return "late"


with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()}\\n")
if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
    time.sleep(120)
server.run()
'''


# --- broker and workers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def kill_broker() -> Iterator[str]:
    if os.environ.get("CELERY_BROKER_URL"):
        yield os.environ["CELERY_BROKER_URL"]
        return
    from station import datadir, embedded

    root = Path(tempfile.mkdtemp(prefix="stk-"))  # short: unix socket paths are limited
    proc = embedded.start_broker(root)
    try:
        yield f"redis+socket://{datadir.broker_socket(root)}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(kill_broker: str, settings: Any) -> Iterator[str]:
    """This process sends (start_run, the reaper) to the module's broker."""
    settings.RUN_STALE_SECONDS = STALE
    settings.RUN_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.VAULT_REVEAL_ALLOWED = True  # discovery here plays the worker
    saved = app.conf.broker_url, app.conf.result_backend
    point_celery_at(app, kill_broker, None)
    try:
        yield kill_broker
    finally:
        point_celery_at(app, *saved)


def _url(user: str, password: str, host: str, port: Any, name: str) -> str:
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{quote(host, safe='')}"
    return f"postgres://{netloc}{':' + str(port) if port else ''}/{name}"


def worker_env(broker_url: str, **extra: str) -> dict[str, str]:
    """`station worker` against this test run's database and broker, with short heartbeats."""
    from station.testing.pytest_plugin import _owner_credentials

    sd = connections["default"].settings_dict
    host, port, name = str(sd["HOST"]), sd.get("PORT"), str(sd["NAME"])
    owner, owner_password = _owner_credentials()
    env = {k: v for k, v in os.environ.items()
           if k not in {"STATION_DB_ROLE", "DATABASE_SUPERUSER_URL", "STATION_PROCESS"}}
    env.update({
        "DATABASE_URL": _url(str(sd["USER"]), str(sd["PASSWORD"]), host, port, name),
        "DATABASE_OWNER_URL": _url(owner, owner_password, host, port, name),
        "CELERY_BROKER_URL": broker_url,
        "STATION_SECRET_KEY": str(settings.SECRET_KEY),
        "STATION_DB_CONN_MAX_AGE": "0",
        "STATION_RUN_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "STATION_RUN_STALE_SECONDS": str(STALE),
        "STATION_MCP_CALL_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
        "STATION_MCP_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
        "STATION_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "station.settings",
        **extra,
    })
    if settings.VAULT_MASTER_KEYS_FILE is not None and "STATION_MASTER_KEYS" not in env:
        env["STATION_MASTER_KEYS_FILE"] = str(settings.VAULT_MASTER_KEYS_FILE)
    return env


class Worker:
    """A `station worker` in its own process group; its output goes to a file."""

    def __init__(self, env: dict[str, str], log_dir: Path, concurrency: int) -> None:
        self.log = log_dir / f"worker-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "station.cli", "worker", "--concurrency",
                 str(concurrency)],
                env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
                process_group=0)

    def kill(self) -> None:
        """SIGKILL to the worker and its pool children at once: no shutdown code runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); `wait` collects it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self) -> None:
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class KillWorld:
    fx: OrgFixture
    env: Environment
    broker: str
    log_dir: Path
    workers: list[Worker]

    def worker(self, concurrency: int = 2) -> Worker:
        worker = Worker(worker_env(self.broker), self.log_dir, concurrency)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log.name}\n{w.tail()}" for w in self.workers)

    def agent(self, name: str, scenario: list[dict[str, Any]], tools: list[str]) -> Agent:
        definition = {
            "description": f"{name} (test)", "instructions": "You are a test agent.",
            "provider": "scripted", "model": "scripted-1",
            "parameters": {"scenario": scenario}, "allowed_tools": tools,
            "input_schema": {}, "max_steps": 10, "max_tokens": 100_000, "max_seconds": 300}
        with self.fx.scope(), transaction.atomic():
            agent = Agent.objects.create(organization=self.fx.org, environment=self.env,
                                         name=name, latest_version=1, **definition)
            text = json.dumps(definition, sort_keys=True)
            AgentVersion.objects.create(organization=self.fx.org, agent=agent, number=1,
                                        definition=definition,
                                        content_hash=hashlib.sha256(text.encode()).hexdigest())
        return agent

    def start(self, agent: Agent, message: str) -> Run:
        with self.fx.scope():
            run, _ = services.start_run(actor=SYSTEM, agent=agent, input={"message": message})
        return run

    def runs(self, ids: list[Any]) -> list[Run]:
        with self.fx.scope(), transaction.atomic():
            by_id = {r.pk: r for r in Run.objects.filter(pk__in=ids)}
        return [by_id[i] for i in ids]

    def steps(self, run: Run) -> list[RunStep]:
        with self.fx.scope(), transaction.atomic():
            return list(RunStep.objects.filter(run_id=run.pk).order_by("sequence"))

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 60,
             reap: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reap:
                lifecycle.reap()
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


@pytest.fixture
def kill_world(committed_db: None, make_org: Callable[..., OrgFixture], broker: str,
               tmp_path: Path) -> Iterator[KillWorld]:
    fx = make_org("killco")
    with fx.scope():
        with transaction.atomic():
            env = Environment.objects.get(slug="dev")
            ModelProvider.objects.create(organization=fx.org, environment=env, name="scripted",
                                         kind=ModelProvider.SCRIPTED)
            clock = tools.create_mcp_server(actor=SYSTEM, environment=env, name="clock",
                                            transport="stdio", command=TIME_SERVER)
        result = discovery.discover(clock, actor=SYSTEM, purpose="test discovery")
        assert result.ok, result.error
    world = KillWorld(fx, env, broker, tmp_path, [])
    try:
        yield world
    finally:
        for worker in world.workers:
            worker.stop()
        for worker in world.workers:
            worker.wait()


def _final(world: KillWorld, ids: list[Any]) -> Callable[[], bool]:
    return lambda: all(r.is_final for r in world.runs(ids))


# --- the tests ----------------------------------------------------------------------------


def _group(pgid: int) -> set[int]:
    """Pids of the processes in a process group (a worker and its pool children)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid:
            pids.add(int(stat.parent.name))
    return pids


def _pid(run: Run) -> int:
    return int(run.claimed_by.rsplit(":", 2)[1])  # engine.worker_label(): host:pid:thread


def kill_holder(world: KillWorld, live: list[Worker], runs: list[Run],
                child_only: bool = False) -> tuple[Worker, set[Any]]:
    """SIGKILL the worker holding the first of `runs` (its whole process group, or only the
    pool process running it); returns the worker and the runs that died with it."""
    pid = _pid(runs[0])
    target = next(w for w in live if pid in _group(w.proc.pid))
    pids = {pid} if child_only else _group(target.proc.pid)
    if child_only:
        os.kill(pid, signal.SIGKILL)
    else:
        target.kill()
    time.sleep(0.3)  # a commit already sent by a dying process lands before we look
    held = {r.pk for r in world.runs([r.pk for r in runs]) if r.status == Run.RUNNING
            and _pid(r) in pids}
    return target, held


def test_runs_survive_workers_killed_mid_run(kill_world: KillWorld) -> None:
    """3 trials x 3 runs on two 2-process workers; each trial kills the worker holding a run
    at a different moment: no run is lost or left running, no step is recorded twice, and a
    retried run goes on from its last recorded step."""
    world = kill_world
    agent = world.agent("slow-clock", SCENARIO, ["clock/get_current_time"])
    live = [world.worker(), world.worker()]
    continued = 0
    # Kill once a run holds this many steps: 0 (just claimed, likely while its MCP server
    # starts), 2 (between tool calls), 4 (before the last answer). The second trial kills
    # only the pool process (as the OOM killer would): Celery puts the message back at once
    # (reject_on_worker_lost), the redelivery finds the run still running and does nothing,
    # and the reaper retries it.
    for trial, (kill_at, child_only) in enumerate(((0, False), (2, True), (4, False))):
        began = time.monotonic()
        ids = [world.start(agent, f"trial {trial} run {n}").pk for n in range(3)]

        def ready(ids: list[Any] = ids, kill_at: int = kill_at) -> list[Run]:
            return [r for r in world.runs(ids)
                    if r.status == Run.RUNNING and r.step_count >= kill_at]

        world.wait(f"trial {trial}: a run with {kill_at} steps", lambda: bool(ready()))
        target, held = kill_holder(world, live, ready(), child_only)
        assert held, "the kill must hit a running run"
        killed = {r.pk: r.step_count for r in world.runs(list(held))}
        if not child_only:
            live = [w for w in live if w is not target] + [world.worker()]
        world.wait(f"trial {trial}: every run final", _final(world, ids), timeout=90,
                   reap=True)

        with world.fx.scope(), transaction.atomic():
            assert not ActiveRun.objects.filter(run_id__in=ids).exists()
            retried_events = AuditEvent.objects.filter(action="run.retried").count()
        for run in world.runs(ids):
            steps = world.steps(run)
            where = f"trial {trial}, run {run.pk} (attempt {run.attempt}): {run.error}"
            assert run.status == Run.SUCCEEDED, where + "\n" + world.logs()
            assert run.output == f"done: trial {trial} run {ids.index(run.pk)}", where
            # Each sequence once, no gap, and the conversation happened exactly once.
            assert [s.sequence for s in steps] == list(range(1, len(KINDS) + 1)), where
            assert [s.kind for s in steps] == KINDS, where
            assert run.step_count == len(KINDS), where
            attempts = [s.attempt for s in steps]
            assert attempts == sorted(attempts) and attempts[-1] == run.attempt, where
            if run.pk in killed:
                assert run.attempt >= 2, where
                # Steps recorded before the kill were kept; the retry went on after them.
                before = [s.sequence for s in steps if s.attempt < run.attempt]
                assert before == list(range(1, killed[run.pk] + 1)), where
                continued += bool(before)
        assert retried_events >= len(killed)
        assert time.monotonic() - began < 100, f"trial {trial} took too long"
        assert all(w.proc.poll() is None for w in live), world.logs()
    assert continued, "at least one retried run must have continued after recorded steps"


def test_run_that_keeps_dying_is_failed_after_max_attempts(kill_world: KillWorld) -> None:
    world = kill_world
    # The second answer takes 20 s: every attempt dies inside it.
    agent = world.agent("doomed", [
        {"tool_calls": [{"name": CLOCK, "arguments": {"timezone": "UTC"}}]},
        {"content": "never", "delay_seconds": 20},
    ], ["clock/get_current_time"])
    live = [world.worker(concurrency=1), world.worker(concurrency=1)]
    run_id = world.start(agent, "die").pk
    for attempt in range(1, MAX_ATTEMPTS + 1):
        def claimed(attempt: int = attempt) -> bool:
            run = world.runs([run_id])[0]
            return run.status == Run.RUNNING and run.attempt == attempt and \
                run.step_count >= 2
        world.wait(f"attempt {attempt} claimed", claimed, reap=True)
        target, held = kill_holder(world, live, world.runs([run_id]))
        assert held == {run_id}
        live = [w for w in live if w is not target]
        if attempt < MAX_ATTEMPTS - 1:
            live.append(world.worker(concurrency=1))
    world.wait("the run failed", _final(world, [run_id]), timeout=30, reap=True)

    run = world.runs([run_id])[0]
    assert run.status == Run.FAILED
    assert run.attempt == MAX_ATTEMPTS
    assert f"stopped responding {MAX_ATTEMPTS} times" in run.error
    assert "not retried again" in run.error
    steps = world.steps(run)
    # Only the first attempt got through the tool call; the later ones died in the slow
    # model call, and nothing was recorded twice.
    assert [(s.sequence, s.kind, s.attempt) for s in steps] == [
        (1, "model", 1), (2, "tool", 1)]
    with world.fx.scope(), transaction.atomic():
        assert not ActiveRun.objects.filter(run_id=run_id).exists()
        assert AuditEvent.objects.filter(action="run.retried").count() == MAX_ATTEMPTS - 1


def test_hanging_mcp_servers_do_not_wedge_the_worker(kill_world: KillWorld,
                                                    tmp_path: Path) -> None:
    """One worker process: a run whose tool call never returns, then a run whose MCP server
    never answers `initialize`, then an ordinary run: all three finish, in order."""
    world = kill_world
    script, pids, frozen_flag = (tmp_path / "hang_server.py", tmp_path / "hang.pids",
                                 tmp_path / "frozen")
    script.write_text(HANG_SERVER)
    with world.fx.scope():
        for name, args in (("stuck", [str(script), str(pids)]),
                           ("frozen", [str(script), str(pids), str(frozen_flag)])):
            with transaction.atomic():
                server = tools.create_mcp_server(actor=SYSTEM, environment=world.env,
                                                 name=name, transport="stdio",
                                                 command=sys.executable, args=args)
            assert discovery.discover(server, actor=SYSTEM, purpose="test discovery").ok
    frozen_flag.touch()  # from now on the "frozen" server hangs before its handshake
    agents = [
        world.agent("hangs", [{"tool_calls": [{"name": "stuck__hang", "arguments": {}}]},
                              {"content": "gave up: {last_tool_result}"}], ["stuck/hang"]),
        world.agent("frozen", [{"tool_calls": [{"name": "frozen__hang", "arguments": {}}]},
                               {"content": "gave up: {last_tool_result}"}], ["frozen/hang"]),
        world.agent("after", SCENARIO, ["clock/get_current_time"]),
    ]
    try:
        world.worker(concurrency=1)  # one process: each run needs the one before to let go
        began = time.monotonic()
        ids = [world.start(agent, "next").pk for agent in agents]
        world.wait("all runs final", _final(world, ids), timeout=90)
        elapsed = time.monotonic() - began

        stuck, frozen, after = world.runs(ids)
        for run in (stuck, frozen):
            assert run.status == Run.SUCCEEDED, run.error + world.logs()
            tool_step = world.steps(run)[1]
            assert tool_step.kind == "tool" and tool_step.error, tool_step.output
            assert run.output.startswith("gave up: ")
        assert "timed out" in world.steps(stuck)[1].error
        assert "timed out" in world.steps(frozen)[1].error.lower()  # connecting, bounded
        assert after.status == Run.SUCCEEDED and after.output == "done: next", \
            after.error + world.logs()
        assert stuck.finished_at and frozen.started_at and frozen.finished_at
        assert after.started_at
        # One worker process, so each run started only after the previous one let go.
        assert stuck.finished_at <= frozen.started_at
        assert frozen.finished_at <= after.started_at
        assert elapsed < 75
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            _kill_if_ours(int(pid), str(script))


def _kill_if_ours(pid: int, script: str) -> None:
    """SIGKILL a hung server this test started (checked by its command line: pids recycle)."""
    try:
        if script in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass
