"""Shared fixtures. The database fixtures live in station.testing.pytest_plugin; they are
re-exported here because conftest fixtures take precedence over pytest-django's own."""

from station.testing.pytest_plugin import (  # noqa: F401
    committed_db,
    django_db_setup,
    owner_cursor,
)
from tests.fixtures import *  # noqa: F403
from tests.peers import everything  # noqa: F401  (a session fixture: real MCP server)
