"""Factories and the two-org fixture used across the suite (STYLE.md §8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from tenants import services
from tenants.authz import Principal
from tenants.context import org_scope
from tenants.models import Organization, User

SYSTEM = Principal.system("tests")


@dataclass
class OrgFixture:
    org: Organization
    owner: User

    def scope(self) -> Any:
        return org_scope(self.org)

    def key(self, role: str = "owner", *, env: str | None = None,
            created_by: User | None = None, scopes: list[str] | None = None) -> str:
        """A fresh API key for this org; returns the plaintext."""
        from tenants.models import Environment

        with self.scope():
            environment = Environment.objects.get(slug=env) if env else None
            actor = Principal.for_user(created_by) if created_by else SYSTEM
            created = services.create_api_key(
                actor=actor, org=self.org, name=f"{role} key",
                role=None if scopes else role, scopes=scopes, environment=environment)
        return created.plaintext

    def client(self, role: str = "owner", **kwargs: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key(role, **kwargs)}")
        return client


@pytest.fixture
def make_org(db: None) -> Callable[..., OrgFixture]:
    def _make(slug: str, owner_email: str | None = None) -> OrgFixture:
        created = services.create_organization(
            actor=SYSTEM, slug=slug, name=slug.replace("-", " ").title(),
            owner_email=owner_email or f"owner@{slug}.example")
        return OrgFixture(created.organization, created.owner)

    return _make


@pytest.fixture
def org_a(make_org: Callable[..., OrgFixture]) -> OrgFixture:
    return make_org("acme")


@pytest.fixture
def org_b(make_org: Callable[..., OrgFixture]) -> OrgFixture:
    return make_org("globex")


@pytest.fixture
def member(org_a: OrgFixture) -> Callable[[str, str], User]:
    """Adds a member with a role to org A; returns the user."""
    def _add(email: str, role: str) -> User:
        with org_a.scope():
            m = services.invite_member(actor=SYSTEM, org=org_a.org, email=email, role=role)
        return m.user

    return _add
