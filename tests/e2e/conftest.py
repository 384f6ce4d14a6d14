"""Browser journeys: Playwright (sync API) driving Debian's Chromium against `live_server`.

The live server sees committed data, so these tests use the project's `committed_db` (which
cleans up as the owner role) instead of pytest-django's `transactional_db`, whose TRUNCATE
the append-only audit table refuses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls made there
# (fixtures, assertions on the database) are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path("var/test/screenshots")
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {
        "executable_path": str(CHROMIUM),
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1360, "height": 860}}


@pytest.fixture(scope="session", autouse=True)
def _close_connections_before_playwright_stops(playwright: Any) -> Iterator[None]:
    """While Playwright's session runs, the main thread has a running event loop, so Django
    keeps its connections per context instead of per thread. Tests that run after the
    browser tests (pytest-django orders live-server tests first) open connections there;
    close them before Playwright stops, or the test database cannot be dropped at the end."""
    yield
    from django.db import connections

    connections.close_all()


@pytest.fixture(autouse=True)
def _live_server_helper(request: pytest.FixtureRequest) -> Iterator[None]:
    """Replaces pytest-django's helper of the same name, which would pull in
    `transactional_db` for every test using `live_server`: use `committed_db` instead."""
    if "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("committed_db")
    live_server = request.getfixturevalue("live_server")
    live_server._live_server_modified_settings.enable()
    yield
    live_server._live_server_modified_settings.disable()


@dataclass
class ConsoleOrg:
    org: Any
    owner: Any
    password: str

    def scope(self) -> Any:
        from tenants.context import org_scope

        return org_scope(self.org)


@pytest.fixture
def console_org(committed_db: None) -> ConsoleOrg:
    """A committed org `acme` whose owner can sign in with PASSWORD."""
    from tenants import services
    from tenants.authz import Principal

    created = services.create_organization(
        actor=Principal.system("e2e"), slug="acme", name="Acme Robotics",
        owner_email="owner@acme.example")
    created.owner.set_password(PASSWORD)
    created.owner.save()
    return ConsoleOrg(created.organization, created.owner, PASSWORD)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    def _take(page: Any, name: str | None = None) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name or request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _take
