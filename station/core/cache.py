"""The shared cache: where allauth counts sign-in and MFA attempts (ACCOUNT_RATE_LIMITS) and
OIDC keeps its IdPs' signing keys.

It must be shared by every web process: a per-process cache multiplies each rate limit by the
number of gunicorn workers. With a Redis/Valkey broker (a system Redis, or the embedded Valkey
on its unix socket) the cache lives on the same server in *another* logical database, so
nothing the cache does can touch queued tasks. With any other broker (RabbitMQ) it falls back
to Django's database cache, in a table a migration creates (station.core 0001).
STATION_CACHE_URL overrides the choice.

Read by settings: nothing here may import Django's cache machinery (see cache_backends).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

# Table of the database fallback; created by station/core/migrations, never createcachetable.
DATABASE_CACHE_TABLE = "station_cache"
# Redis servers have 16 logical databases (0-15) unless configured otherwise.
_LAST_DB = 15


def _db_of(url: str) -> int:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for name in ("db", "virtual_host"):
        if name in query:
            return int(query[name][0])
    if parts.scheme in {"redis", "rediss"} and parts.path.strip("/"):
        return int(parts.path.strip("/"))
    return 0


def _other_db(db: int) -> int:
    return db + 1 if db < _LAST_DB else db - 1


def cache_url_for_broker(broker_url: str) -> str:
    """The default cache URL: the broker's Redis in the next logical database, or the
    database cache when the broker is not Redis."""
    parts = urlsplit(broker_url)
    scheme = parts.scheme.lower()
    if scheme in {"redis", "rediss"}:
        db = _other_db(_db_of(broker_url))
        return urlunsplit((scheme, parts.netloc, f"/{db}", parts.query, ""))
    if scheme == "redis+socket":
        return _unix_url(broker_url, db=_other_db(_db_of(broker_url)))
    return "database://"


def _unix_url(socket_url: str, *, db: int) -> str:
    """kombu's redis+socket://PATH as redis-py (behind Django's cache) spells it:
    unix://PATH?db=N."""
    parts = urlsplit(socket_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "virtual_host"}
    query["db"] = str(db)
    return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"


def cache_config(url: str, *, key_prefix: str) -> dict[str, Any]:
    """A CACHES entry for `url`: redis://, rediss://, unix:// (or redis+socket://) for a
    Redis/Valkey server, database:// for the database table, locmem:// for one process only
    (development and tests: counters are then per process again)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "redis+socket":
        url, scheme = _unix_url(url, db=_db_of(url)), "unix"
    if scheme in {"redis", "rediss", "unix"}:
        return {
            "BACKEND": "station.core.cache_backends.StationRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": key_prefix,
            # A sign-in must not hang on a cache that went away: fail fast instead.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    if scheme == "database":
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": DATABASE_CACHE_TABLE,
            "KEY_PREFIX": key_prefix,
        }
    if scheme == "locmem":
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_PREFIX": key_prefix,
        }
    raise ImproperlyConfigured(
        "STATION_CACHE_URL must start with redis://, rediss://, unix://, redis+socket://, "
        f"database:// or locmem://, got {url!r}."
    )
