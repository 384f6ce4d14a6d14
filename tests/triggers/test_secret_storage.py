"""Webhook signing secrets live under the org's vault data key and survive its rotation."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from station.agents.models import Agent
from station.triggers import secrets, services
from station.triggers.models import InboundWebhook
from station.vault import services as vault
from station.vault.models import DataKey
from tests.fixtures import SYSTEM, OrgFixture

pytestmark = pytest.mark.django_db


def test_data_key_rotation_reseals_webhook_secrets(org_a: OrgFixture, agent_a: Agent) -> None:
    with org_a.scope():
        hook, secret = services.create_inbound_webhook(actor=SYSTEM, agent=agent_a)
        before = InboundWebhook.objects.get(pk=hook.pk)
        vault.rotate_data_key(actor=SYSTEM, org=org_a.org)
        after = InboundWebhook.objects.select_related("secret_data_key").get(pk=hook.pk)
        assert after.secret_data_key_id != before.secret_data_key_id
        assert DataKey.objects.count() == 1  # the old key is gone
        assert secrets.reveal(after) == secret
    ts = int(time.time())
    response = Client().post(f"/hooks/{hook.pk}", data=b"{}", content_type="application/json",
                             HTTP_STATION_TIMESTAMP=str(ts),
                             HTTP_STATION_SIGNATURE=f"v1={secrets.sign(secret, ts, b'{}')}")
    assert response.status_code == 202, response.content


def test_a_sealed_secret_copied_to_another_webhook_does_not_decrypt(
        org_a: OrgFixture, agent_a: Agent) -> None:
    from cryptography.exceptions import InvalidTag

    with org_a.scope():
        first, _ = services.create_inbound_webhook(actor=SYSTEM, agent=agent_a)
        second, _ = services.create_inbound_webhook(actor=SYSTEM, agent=agent_a)
        second.secret_nonce, second.secret_ciphertext = first.secret_nonce, \
            first.secret_ciphertext
        with pytest.raises(InvalidTag):
            secrets.reveal(second)
