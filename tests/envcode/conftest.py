from __future__ import annotations

from typing import Any

import pytest

from station.vault import services as vault
from tenants.models import Environment
from tests.fixtures import SYSTEM, OrgFixture


def seed_staging(fx: OrgFixture) -> None:
    """staging: three variables and two secrets; prod: one variable with its own value."""
    with fx.scope():
        staging = Environment.objects.get(slug="staging")
        prod = Environment.objects.get(slug="prod")
        for name, value in {"API_URL": "https://staging.example", "LOG_LEVEL": "debug",
                            "GREETING": "héllo\nworld: yes"}.items():
            vault.set_variable(actor=SYSTEM, environment=staging, name=name, value=value)
        for name in ("GITHUB_TOKEN", "OPENAI_KEY"):
            vault.set_secret(actor=SYSTEM, environment=staging, name=name,
                             value=f"staging-secret-{name}")
        vault.set_variable(actor=SYSTEM, environment=prod, name="LOG_LEVEL", value="warning")
        vault.set_secret(actor=SYSTEM, environment=prod, name="GITHUB_TOKEN",
                         value="prod-secret-value")


@pytest.fixture
def seeded(org_a: OrgFixture) -> OrgFixture:
    seed_staging(org_a)
    return org_a


def env(slug: str) -> Any:
    return Environment.objects.select_related("organization").get(slug=slug)


@pytest.fixture
def login() -> Any:
    """A Django test client signed in as the given user (the console's own fixture)."""
    from django.test import Client

    def _login(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return _login
