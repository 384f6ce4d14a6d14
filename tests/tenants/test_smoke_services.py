import pytest

from tenants.models import Environment, Membership


def test_org_created_with_envs_and_owner(org_a, org_b):
    with org_a.scope():
        slugs = sorted(Environment.objects.values_list("slug", flat=True))
        assert slugs == ["dev", "prod", "staging"]
        assert Membership.objects.get().role == "owner"


def test_api_me(org_a):
    r = org_a.client("viewer").get("/api/v1/me")
    assert r.status_code == 200, r.content
    assert r.json()["organization"]["slug"] == "acme"


@pytest.mark.django_db
def test_env_create_api(org_a):
    c = org_a.client("admin")
    r = c.post("/api/v1/environments", {"slug": "qa", "name": "QA"}, format="json")
    assert r.status_code == 201, r.content
    r = c.get("/api/v1/environments")
    assert r.status_code == 200, r.content
    assert "qa" in [e["slug"] for e in r.json()["results"]]
