"""The live run stream served the way `station web` serves it: gunicorn with gthread workers,
in its own process. A stream holds a worker thread, ordinary pages still answer, a stream
past the per-process cap answers at once (the page polls), and a change made by another
process (here: this test cancelling the run) reaches the open stream through NOTIFY."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from station.agents import services as agents
from station.providers import services as providers
from station.runs import services
from station.runs.models import Run
from tenants.models import Environment
from tests.fixtures import SYSTEM
from tests.runs import conftest as runs_conftest

sent = runs_conftest.sent  # tasks recorded, not sent: no worker takes the run
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gunicorn(committed_db: None) -> Iterator[str]:
    db = connections["default"].settings_dict
    host = quote(str(db["HOST"]), safe="")
    url = (f"postgres://{db['USER']}:{quote(str(db['PASSWORD']), safe='')}@{host}"
           f"{':' + str(db['PORT']) if db['PORT'] else ''}/{db['NAME']}")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": "memory://",
           "STATION_LIVE_STREAMS_PER_PROCESS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "station.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--threads", "3", "--worker-class", "gthread",
         "--graceful-timeout", "20", "--no-control-socket"],
        env=env, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(25)
        except subprocess.TimeoutExpired:
            proc.kill()


def _get(address: str, path: str, cookie: str, timeout: float = 10) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(address, timeout=timeout)
    conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/event-stream"})
    return conn.getresponse()


def test_streams_under_gunicorn_gthread(gunicorn: str, make_org: Any, sent: Any) -> None:
    fx = make_org("streamco")
    with fx.scope():
        env = Environment.objects.get(slug="dev")
        providers.create_provider(actor=SYSTEM, environment=env, name="scripted",
                                  kind="scripted")
        agent = agents.create_agent(actor=SYSTEM, environment=env, name="idle",
                                    provider="scripted", model="scripted-1",
                                    parameters={"scenario": [{"content": "ok"}]})
        agents.publish_agent(actor=SYSTEM, agent=agent)
        # Queued and never executed (no worker here): the stream has to wait.
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
    client = Client()
    client.force_login(fx.owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    events_path = reverse("console:runs-events", args=[fx.org.slug, run.pk])

    first = _get(gunicorn, events_path, cookie, timeout=30)
    assert first.status == 200
    assert first.getheader("Content-Type") == "text/event-stream"
    received: list[str] = []

    def read() -> None:
        while line := first.readline():
            received.append(line.decode())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while not any('"status":"queued"' in line for line in received):
        assert time.monotonic() < deadline, received
        time.sleep(0.1)

    # The stream holds a thread; an ordinary page is still served at once.
    started = time.monotonic()
    page = _get(gunicorn, reverse("console:runs", args=[fx.org.slug]), cookie)
    assert page.status == 200 and str(run.pk).encode() in page.read()
    assert time.monotonic() - started < 3

    # Past the cap (1 per process here), a stream answers at once: the page polls.
    started = time.monotonic()
    busy = _get(gunicorn, events_path, cookie)
    body = busy.read().decode()
    assert time.monotonic() - started < 3
    assert body.startswith("retry: 3000") and '"status":"queued"' in body

    # A change committed by another process reaches the open stream by NOTIFY.
    with fx.scope():
        services.cancel_run(actor=SYSTEM, run=Run.objects.get(pk=run.pk))
    reader.join(10)
    text = "".join(received)
    assert '"status":"cancelled"' in text and "event: end" in text
    # The stream closed after `end`, releasing its slot: a new one streams again.
    again = _get(gunicorn, events_path, cookie).read().decode()
    assert again.startswith("retry: 1000") and "event: end" in again
