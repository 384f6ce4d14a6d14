"""Cache backends named by station.core.cache (kept apart: settings import that module)."""

from __future__ import annotations

import re
from typing import Any

from django.core.cache.backends.redis import RedisCache


class StationRedisCache(RedisCache):
    """Django's Redis cache whose clear() deletes only this cache's keys (its KEY_PREFIX).

    Django's own clear() is FLUSHDB: on a database shared with a broker, another Station or
    another test process, it would drop their data too.
    """

    def clear(self) -> None:
        client = self._cache.get_client(write=True)  # type: ignore[attr-defined]
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self.key_prefix) + ":*"
        batch: list[Any] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
