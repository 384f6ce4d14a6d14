"""`station up`: every process of Station on one machine, started and stopped together.

Order: embedded PostgreSQL (unless DATABASE_URL) → embedded broker (unless
CELERY_BROKER_URL) → migrate → demo org → worker, beat, web. Each child runs in its own
process group so a terminal's Ctrl-C reaches only this supervisor, which then stops them in
reverse order: web, beat, worker (finishing its running tasks), broker, PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from station import datadir, embedded


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0


@dataclass
class Supervisor:
    port: int = 8000
    host: str = "127.0.0.1"
    demo: bool = True
    children: list[Child] = field(default_factory=list)
    started_postgres: bool = False
    _stopping: bool = False

    def say(self, message: str) -> None:
        print(f"[station] {message}", flush=True)

    def run(self) -> int:
        root = datadir.data_dir()
        os.environ["STATION_DATA_DIR"] = str(root)
        if not _port_free(self.host, self.port):
            print(
                f"station: port {self.port} on {self.host} is in use; choose another with --port.",
                file=sys.stderr,
            )
            return 2
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._start_all(root)
            return self._watch()
        except _Stop:
            return 0
        except Exception as exc:
            print(f"station: start-up failed: {exc}", file=sys.stderr)
            return 1
        finally:
            self._stop_all(root)

    # --- start ---------------------------------------------------------------------------
    def _start_all(self, root: os.PathLike[str]) -> None:
        from pathlib import Path

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.say(f"data directory: {root}")
        if not os.environ.get("DATABASE_URL"):
            self.say("starting embedded PostgreSQL…")
            self.started_postgres = embedded.start_postgres(root)
            embedded.bootstrap_database(root)
        else:
            self.say("using DATABASE_URL")
        if not os.environ.get("CELERY_BROKER_URL"):
            self.say("starting embedded broker (Valkey)…")
            broker = embedded.start_broker(root)
            self.children.append(Child("broker", broker))
        else:
            self.say("using CELERY_BROKER_URL")
        self._check_interrupted()
        self.say("applying migrations…")
        self._run_step(["migrate", "-v", "0"])
        self._run_step(["keys", "check"], capture=True)
        login = None
        if self.demo:
            out = self._run_step(["demo"], capture=True)
            login = out.strip().removeprefix("Demo login: ")
        self._spawn("worker", ["worker", "--concurrency", "2"])
        self._spawn("beat", ["beat"])
        self._spawn(
            "web",
            [
                "web",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--threads",
                "4",
            ],
            stop_timeout=25,
        )
        self._wait_http()
        local = self.host in {"127.0.0.1", "0.0.0.0"}  # noqa: S104 - comparing, not binding
        url = f"http://{'localhost' if local else self.host}:{self.port}/"
        self.say(f"Station is up: {url}")
        if login:
            email, _, password = login.partition(" / ")
            self.say(f"log in as {email} with password {password}")
        self.say("press Ctrl-C to stop")

    def _cli(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "station.cli", *args]

    def _run_step(self, args: list[str], capture: bool = False) -> str:
        proc = subprocess.Popen(
            self._cli(args), process_group=0, stdout=subprocess.PIPE if capture else None
        )
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"`station {' '.join(args)}` exited with {proc.returncode}")
        return out.decode() if out else ""

    def _spawn(self, name: str, args: list[str], stop_timeout: float = 60) -> None:
        proc = subprocess.Popen(self._cli(args), process_group=0)
        self.children.append(Child(name, proc, stop_timeout=stop_timeout))

    def _wait_http(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_children()
            if not _port_free(self.host, self.port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not listen on port {self.port} in {timeout}s")

    # --- run -----------------------------------------------------------------------------
    def _watch(self) -> int:
        while True:
            self._check_children()
            time.sleep(0.5)

    def _check_children(self) -> None:
        self._check_interrupted()
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                raise RuntimeError(f"{child.name} exited unexpectedly with code {code}")

    def _check_interrupted(self) -> None:
        if self._stopping:
            raise _Stop

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            self.say("stopping…")

    # --- stop ----------------------------------------------------------------------------
    def _stop_all(self, root: os.PathLike[str]) -> None:
        from pathlib import Path

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(self.children):
            _stop(child)
            self.say(f"stopped {child.name}")
        self.children.clear()
        if self.started_postgres:
            embedded.stop_postgres(Path(root))
            self.say("stopped PostgreSQL")


class _Stop(Exception):
    pass


def _stop(child: Child) -> None:
    if child.proc.poll() is not None:
        return
    try:
        os.killpg(child.proc.pid, child.stop_signal)
    except ProcessLookupError:
        return
    try:
        child.proc.wait(timeout=child.stop_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
