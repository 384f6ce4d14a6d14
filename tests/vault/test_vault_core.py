"""Vault core: envelope encryption bound to its place, versions, reveal, rotation."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from audit.models import AuditEvent
from station.vault import crypto, services
from station.vault.models import DataKey, Secret, SecretVersion
from tenants.models import Environment
from tests.fixtures import SYSTEM

CANARY = "canary-9f1c2e-value-do-not-leak"


@pytest.fixture
def reveal_allowed(settings):
    settings.VAULT_REVEAL_ALLOWED = True


def _env(slug="dev"):
    return Environment.objects.get(slug=slug)


def test_set_and_reveal_round_trip_with_versions(org_a, reveal_allowed):
    with org_a.scope():
        env = _env()
        services.set_secret(actor=SYSTEM, environment=env, name="API_TOKEN", value="one")
        secret = services.set_secret(actor=SYSTEM, environment=env, name="API_TOKEN", value="two")
        assert secret.current_version == 2
        assert services.reveal(environment=env, name="API_TOKEN", purpose="test",
                               actor=SYSTEM) == "two"
        actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
        assert actions[-3:] == ["secret.created", "secret.updated", "secret.revealed"]
        assert all("two" not in str(e.changes) for e in AuditEvent.objects.all())


def test_reveal_refused_outside_workers(org_a, settings):
    settings.VAULT_REVEAL_ALLOWED = False
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="X", value="v")
        with pytest.raises(services.RevealNotAllowed):
            services.reveal(environment=_env(), name="X", purpose="t", actor=SYSTEM)


def _stored(name="MOVED"):
    sv = SecretVersion.objects.select_related("secret", "data_key").get(secret__name=name)
    return sv, services._unwrap(sv.data_key)


@pytest.mark.parametrize("where", ["org", "environment", "name", "version"])
def test_ciphertext_moved_elsewhere_fails_to_decrypt(org_a, org_b, where):
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="MOVED", value=CANARY)
        sv, key = _stored()
        aad_args = {"org_id": org_a.org.pk, "environment_id": sv.secret.environment_id,
                    "name": "MOVED", "version": sv.version}
        assert crypto.decrypt(key, bytes(sv.nonce), bytes(sv.ciphertext),
                              crypto.value_aad(**aad_args)) == CANARY
        moved = {"org": {"org_id": org_b.org.pk},
                 "environment": {"environment_id": _env("prod").pk},
                 "name": {"name": "OTHER"}, "version": {"version": sv.version + 1}}[where]
        with pytest.raises(InvalidTag):
            crypto.decrypt(key, bytes(sv.nonce), bytes(sv.ciphertext),
                           crypto.value_aad(**{**aad_args, **moved}))


@pytest.mark.parametrize("part", ["nonce", "ciphertext", "tag", "wrapped_key"])
def test_a_flipped_byte_anywhere_fails(org_a, reveal_allowed, part):
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="FLIP", value=CANARY)
        sv = SecretVersion.objects.get(secret__name="FLIP")
        if part == "wrapped_key":
            dk = sv.data_key
            wrapped = bytearray(bytes(dk.wrapped))
            wrapped[20] ^= 1
            DataKey.objects.filter(pk=dk.pk).update(wrapped=bytes(wrapped))
        else:
            field = "nonce" if part == "nonce" else "ciphertext"
            data = bytearray(bytes(getattr(sv, field)))
            data[-1 if part == "tag" else 0] ^= 1
            SecretVersion.objects.filter(pk=sv.pk).update(**{field: bytes(data)})
        with pytest.raises(InvalidTag):
            services.reveal(environment=_env(), name="FLIP", purpose="t", actor=SYSTEM)


def test_nonces_never_repeat_under_one_key():
    key = crypto.new_data_key()
    nonces = {crypto.encrypt(key, "x", b"aad")[0] for _ in range(100_000)}
    assert len(nonces) == 100_000


def test_only_the_last_n_versions_are_kept(org_a, settings):
    settings.VAULT_VERSIONS_KEPT = 3
    with org_a.scope():
        for i in range(6):
            services.set_secret(actor=SYSTEM, environment=_env(), name="MANY", value=f"v{i}")
        versions = sorted(SecretVersion.objects.values_list("version", flat=True))
        assert versions == [4, 5, 6]


def test_data_key_rotation_reencrypts_and_destroys_the_old_key(org_a, reveal_allowed):
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="A", value="alpha")
        services.set_secret(actor=SYSTEM, environment=_env("prod"), name="B", value="beta")
        old = DataKey.objects.get()
        assert services.rotate_data_key(actor=SYSTEM, org=org_a.org) == 2
        new = DataKey.objects.get()
        assert new.version == old.version + 1 and new.active
        assert services.reveal(environment=_env(), name="A", purpose="t", actor=SYSTEM) == "alpha"
        assert services.reveal(environment=_env("prod"), name="B", purpose="t",
                               actor=SYSTEM) == "beta"


@pytest.mark.parametrize("name", ["", "1ABC", "has space", "x" * 65, "a-b", "${secret:X}"])
def test_unsafe_names_are_refused(org_a, name):
    from station.core.errors import InvalidInput

    with org_a.scope(), pytest.raises(InvalidInput) as exc:
        services.set_secret(actor=SYSTEM, environment=_env(), name=name, value="v")
    assert exc.value.errors == {"name": [exc.value.errors["name"][0]]}
    with org_a.scope():
        assert not Secret.objects.exists()


def test_references_resolve_and_values_redact(org_a, reveal_allowed):
    with org_a.scope():
        services.set_secret(actor=SYSTEM, environment=_env(), name="TOKEN", value=CANARY)
        services.set_variable(actor=SYSTEM, environment=_env(), name="HOST", value="db.local")
        resolved = services.resolve_references(
            "https://${var:HOST}/?t=${secret:TOKEN}", environment=_env(), purpose="t",
            actor=SYSTEM)
        assert resolved.text == f"https://db.local/?t={CANARY}"
        assert services.redact(f"error near {CANARY}", resolved.secret_values) == \
            "error near [redacted]"
