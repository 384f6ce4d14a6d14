"""The database cache's table (station.core.cache, used when the broker is not Redis).

Created here rather than by `createcachetable`, so every install that migrates has it (fresh
installs, `station up`) whatever the broker. A platform table: no organization_id, no RLS; it
holds rate-limit counters and public IdP keys, never tenant rows. The app role gets DML on it
like on every table (station.core.grants) and no TRUNCATE: Django's clear() uses DELETE.
"""

from django.db import migrations

# The table `createcachetable` would create for DatabaseCache("station_cache").
CREATE = """
CREATE TABLE IF NOT EXISTS station_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS station_cache_expires ON station_cache (expires);
"""


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunSQL(CREATE, reverse_sql="DROP TABLE IF EXISTS station_cache")]
