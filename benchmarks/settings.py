"""Django settings for the benchmark process: Station's own, pointed at a throwaway database.

`benchmarks.run` sets the environment (data dir, app role, no debug) and starts the embedded
server before this module is imported, so the embedded socket directory is already known.

Two aliases reach the same throwaway database:

- `default`: the app role, exactly as the web process connects (RLS in force);
- `bare`: the owner role, for which the benchmark lifts FORCE on the tables it reads, so RLS
  does not apply to it. The bare list view and the "RLS off" queries use it.
"""

from __future__ import annotations

import os
from typing import Any

import dj_database_url

from station.settings import *  # noqa: F403
from station.settings import DATABASE_OWNER_URL, DATABASES, REST_FRAMEWORK

BENCH_DATABASE_NAME = os.environ.get("STATION_BENCH_DATABASE_NAME", "bench_station")
_default: dict[str, Any] = dict(DATABASES["default"])
BENCH_PROTECTED_NAMES = {
    _default["NAME"],
    _default["TEST"]["NAME"],
    dj_database_url.parse(DATABASE_OWNER_URL)["NAME"],
}
if BENCH_DATABASE_NAME in BENCH_PROTECTED_NAMES:
    raise RuntimeError(
        f"STATION_BENCH_DATABASE_NAME={BENCH_DATABASE_NAME!r} names the dev or test database; "
        "the benchmark drops its database at the end, so it must be a throwaway name."
    )
# The database the owner role connects to in order to create and drop the throwaway one.
BENCH_MAINTENANCE_DATABASE = dj_database_url.parse(DATABASE_OWNER_URL)["NAME"]

DEBUG = False
WHITENOISE_AUTOREFRESH = False
ROOT_URLCONF = "benchmarks.urls"

_owner = dj_database_url.parse(DATABASE_OWNER_URL)
DATABASES = {
    "default": {**_default, "NAME": BENCH_DATABASE_NAME},
    "bare": {
        **_default,
        "USER": _owner["USER"],
        "PASSWORD": _owner["PASSWORD"],
        "HOST": _owner["HOST"],
        "PORT": _owner["PORT"],
        "NAME": BENCH_DATABASE_NAME,
        # The bare view opens its own transaction on this alias (benchmarks/views.py); with
        # ATOMIC_REQUESTS here, every full-stack request would also open one on it.
        "ATOMIC_REQUESTS": False,
    },
}
# Same project defaults for both views (JSON renderer, cursor pagination): only the
# authentication and permission classes differ, and those are set on the views themselves.
REST_FRAMEWORK = {**REST_FRAMEWORK}
