"""SAML login through the org's IdP: a valid response signs the person in (JIT), and every
adversarial variation is refused with its reason in the org's audit log."""

from __future__ import annotations

from typing import Any

import pytest

from station.identity.models import SsoIdentity
from tenants.models import Membership, User

pytestmark = pytest.mark.django_db


def _logged_in_as(client: Any) -> str | None:
    from django.contrib.auth import get_user_model

    uid = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=uid).email if uid else None


def test_valid_login_provisions_user_and_membership(saml_setup: Any, browser: Any,
                                                    events: Any) -> None:
    response = saml_setup.login(browser)
    assert response.status_code == 302, response.content
    assert response["Location"] == "/o/acme/"
    assert _logged_in_as(browser) == "alice@acme.example"
    user = User.objects.get(email="alice@acme.example")
    assert not user.has_usable_password()
    with saml_setup.fx.scope():
        assert Membership.objects.get(user=user).role == "developer"
        identity = SsoIdentity.objects.get(user=user)
        assert (identity.idp_entity_id, identity.subject) == (
            "https://idp.acme.example/saml", "00u-alice")
    [provisioned] = events("identity.sso_provisioned")
    assert provisioned.changes["user_created"] is True
    [ok] = events("identity.sso_login_succeeded")
    assert ok.actor_label == "alice@acme.example"
