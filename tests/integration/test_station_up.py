"""`station up` end to end: embedded PostgreSQL + broker + migrate + demo + web/worker/beat,
two instances side by side, clean Ctrl-C, and a restart that reuses the data."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_URL",
                "DATABASE_OWNER_URL",
                "DATABASE_SUPERUSER_URL",
                "CELERY_BROKER_URL",
                "STATION_CACHE_URL",
                "STATION_CACHE_KEY_PREFIX",
                "STATION_SECRET_KEY",
                "STATION_DATA_DIR",
                "STATION_TEST_DATABASE_NAME",
                "DJANGO_SETTINGS_MODULE",
            }
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "station.cli",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen; output:\n{''.join(self.output)[-4000:]}")

    def get(self, path: str, key: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, {}

    def cli(self, *args: str) -> str:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_URL",
                "CELERY_BROKER_URL",
                "STATION_CACHE_URL",
                "STATION_CACHE_KEY_PREFIX",
                "STATION_SECRET_KEY",
                "STATION_TEST_DATABASE_NAME",
                "DJANGO_SETTINGS_MODULE",
            }
        }
        env["STATION_DATA_DIR"] = str(self.data_dir)
        out = subprocess.run(
            [sys.executable, "-m", "station.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()

    def stop(self) -> int:
        os.kill(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=120)


def _login(instance: Instance) -> str:
    return instance.wait_for("log in as").split("log in as", 1)[1].strip()


def test_station_up_runs_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    a = Instance(tmp_path / "a", _free_port())
    b = Instance(tmp_path / "b", _free_port())
    try:
        a.wait_for("Station is up")
        login_a = _login(a)
        b.wait_for("Station is up")
        assert login_a.startswith("admin@demo.station.local with password ")

        for inst in (a, b):
            status, body = inst.get("/readyz")
            assert status == 200, body
            # The cache is the embedded Valkey (another logical db than the broker's).
            assert body["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}

        key = a.cli("apikey", "create", "--org", "demo", "--name", "it", "--role", "viewer")
        status, me = a.get("/api/v1/me", key)
        assert status == 200 and me["organization"]["slug"] == "demo"
        # Instance B has its own database: A's key means nothing there.
        assert b.get("/api/v1/me", key)[0] == 401
    finally:
        codes = [inst.stop() for inst in (a, b)]
    assert codes == [0, 0], "".join(a.output[-30:] + b.output[-30:])
    assert "stopped PostgreSQL" in "".join(a.output)
    assert not (tmp_path / "a" / "pg" / "postmaster.pid").exists()

    again = Instance(tmp_path / "a", a.port)
    try:
        again.wait_for("Station is up")
        assert _login(again) == login_a  # same demo login, same data
        status, me = again.get("/api/v1/me", key)
        assert status == 200 and me["organization"]["slug"] == "demo"
    finally:
        assert again.stop() == 0
