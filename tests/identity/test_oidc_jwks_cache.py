"""The IdP's JWKS is cached (station.identity.jwks): sign-ins do not fetch it each time, a key
rotation at the IdP is picked up by one refetch, and ID tokens with made-up kids cannot make
Station fetch the JWKS more than once per floor window."""
# ruff: noqa: F811 (the OIDC login tests' fixtures are imported, then named by the tests)

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from station.identity import jwks, oidc
from station.identity.models import OidcConnection
from tests.fixtures import OrgFixture
from tests.identity.oidc_idp import LoopbackIdp, Tamper, new_key
from tests.identity.test_oidc_login import (  # noqa: F401 (fixtures)
    _loopback_allowed,
    failures,
    idp,
    logged_in_as,
    oidc_login,
    oidc_org,
)

pytestmark = pytest.mark.django_db


def fresh_browser() -> Client:
    return Client(HTTP_HOST="station.test")


def floor_passes(idp: LoopbackIdp, fx: OrgFixture) -> None:
    """As if JWKS_REFETCH_FLOOR_SECONDS had gone by (for `fx`'s connection)."""
    with fx.scope():
        connection = OidcConnection.objects.get()
    cache.delete(jwks._keys(f"{idp.base}/jwks", str(connection.pk))[1])


def test_sign_ins_share_one_fetched_jwks(oidc_org: OrgFixture, idp: LoopbackIdp) -> None:
    for _ in range(3):
        browser = fresh_browser()
        assert oidc_login(browser).status_code == 302
        assert logged_in_as(browser) == "alice@acme.example"
    assert idp.jwks_requests == 1


def test_the_cached_jwks_expires(oidc_org: OrgFixture, idp: LoopbackIdp,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[Any] = []
    real_set = cache.set

    def spy(key: str, value: Any, timeout: Any = None, **kw: Any) -> None:
        stored.append((key, timeout))
        real_set(key, value, timeout, **kw)

    monkeypatch.setattr(cache, "set", spy)
    assert oidc_login(fresh_browser()).status_code == 302
    assert [t for k, t in stored if k.startswith("oidc:jwks:")] == [jwks.JWKS_CACHE_SECONDS]
    assert jwks.JWKS_CACHE_SECONDS <= 600


def test_a_rotated_key_is_picked_up_by_one_refetch(oidc_org: OrgFixture,
                                                   idp: LoopbackIdp) -> None:
    assert oidc_login(fresh_browser()).status_code == 302
    # The IdP rotates: a new key under a new kid, in its JWKS and signing the next tokens.
    idp.key, idp.kid = new_key(), "idp-key-2"
    idp.tamper = Tamper(kid="idp-key-2")
    browser = fresh_browser()
    assert oidc_login(browser).status_code == 302
    assert logged_in_as(browser) == "alice@acme.example"
    assert idp.jwks_requests == 2
    # The new set is cached in turn.
    assert oidc_login(fresh_browser()).status_code == 302
    assert idp.jwks_requests == 2


def test_made_up_kids_refetch_at_most_once_per_floor(oidc_org: OrgFixture,
                                                     idp: LoopbackIdp) -> None:
    assert oidc_login(fresh_browser()).status_code == 302
    for i in range(5):
        idp.tamper = Tamper(key=new_key(), kid=f"attacker-{i}")
        assert oidc_login(fresh_browser()).status_code == 403
    assert failures(oidc_org) == ["unknown_key"] * 5
    assert idp.jwks_requests == 2  # the first sign-in's fetch and one refetch
    floor_passes(idp, oidc_org)
    idp.tamper = Tamper(key=new_key(), kid="attacker-late")
    assert oidc_login(fresh_browser()).status_code == 403
    assert idp.jwks_requests == 3
    # Genuine tokens still sign in from the cache meanwhile.
    idp.tamper = Tamper()
    assert oidc_login(fresh_browser()).status_code == 302
    assert idp.jwks_requests == 3


def test_an_unknown_kid_right_after_a_fetch_is_not_fetched_twice(
        oidc_org: OrgFixture, idp: LoopbackIdp) -> None:
    idp.tamper = Tamper(key=new_key(), kid="attacker")
    assert oidc_login(fresh_browser()).status_code == 403
    assert idp.jwks_requests == 1
    assert failures(oidc_org) == ["unknown_key"]


def test_one_connections_made_up_kids_do_not_hold_back_anothers_refetch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two orgs' connections naming one (shared) jwks_uri: org A's token endpoint answering
    with made-up kids uses up A's refetch, not B's — B still picks up a rotation at once."""
    uri = "https://shared-idp.example/jwks"
    rotated = {"keys": [{"kid": "rotated"}]}
    fetches: list[str] = []

    def fetch(jwks_uri: str) -> Any:
        fetches.append(jwks_uri)
        cache.set(jwks._keys(jwks_uri)[0], rotated, timeout=jwks.JWKS_CACHE_SECONDS)
        return rotated

    def verify(id_token: str, *, jwks: Any, **_: Any) -> dict[str, Any]:
        if id_token not in {k["kid"] for k in jwks["keys"]}:
            raise oidc.OidcError("unknown_key", "no key for this kid")
        return {"sub": "someone"}

    monkeypatch.setattr(jwks, "_fetch", fetch)
    monkeypatch.setattr(oidc, "verify_id_token", verify)
    cache.set(jwks._keys(uri)[0], {"keys": [{"kid": "old"}]}, timeout=60)
    claims = {"issuer": "https://shared-idp.example", "client_id": "c", "nonce": "n",
              "jwks_uri": uri}
    try:
        for _ in range(3):  # org A: one refetch, then the floor
            with pytest.raises(oidc.OidcError):
                jwks.verify_id_token("made-up", connection="org-a-connection", **claims)
        assert fetches == [uri]
        cache.set(jwks._keys(uri)[0], {"keys": [{"kid": "old"}]}, timeout=60)  # not yet seen
        # Org B's first token signed with the rotated key: its own refetch, not A's floor.
        assert jwks.verify_id_token("rotated", connection="org-b-connection",
                                    **claims) == {"sub": "someone"}
        assert fetches == [uri, uri]
    finally:
        cache.delete_many([jwks._keys(uri)[0], jwks._keys(uri, "org-a-connection")[1],
                           jwks._keys(uri, "org-b-connection")[1]])
