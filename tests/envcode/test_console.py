"""The console's Promote page: pick two environments, review the changes, confirm."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from station.vault.models import Variable
from tenants import services as tenant_services
from tests.envcode.conftest import env
from tests.fixtures import SYSTEM

pytestmark = pytest.mark.django_db


def _url(fx) -> str:
    return reverse("console:promote", args=[fx.org.slug])


def _prod_variables(fx):
    with fx.scope():
        return dict(Variable.objects.filter(environment__slug="prod").values_list("name", "value"))


def test_promote_page_shows_the_changes_and_applies_on_confirm(seeded, login):
    client = login(seeded.owner)
    page = client.get(_url(seeded))
    assert page.status_code == 200
    assert "Promote" in page.content.decode()

    preview = client.get(_url(seeded), {"source": "staging", "target": "prod"})
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "API_URL" in html and "GREETING" in html and "OPENAI_KEY" in html
    assert "needs a value in target" in html and "missing value" in html
    assert "Promote 2 changes" in html
    assert "LOG_LEVEL" not in html  # already in prod: never overwritten
    assert _prod_variables(seeded) == {"LOG_LEVEL": "warning"}  # a preview changes nothing

    done = client.post(_url(seeded), {"source": "staging", "target": "prod"}, follow=True)
    assert done.status_code == 200
    assert "Promoted 2 changes from Staging to Production" in done.content.decode()
    assert _prod_variables(seeded) == {"API_URL": "", "GREETING": "", "LOG_LEVEL": "warning"}
    with seeded.scope():
        assert AuditEvent.objects.filter(action="environment.promoted").count() == 1
    after = client.get(_url(seeded), {"source": "staging", "target": "prod"}).content.decode()
    assert "Nothing to promote" in after


def test_same_source_and_target_is_refused(seeded, login):
    response = login(seeded.owner).get(_url(seeded), {"source": "prod", "target": "prod"})
    assert "Pick a different environment" in response.content.decode()


def test_viewer_may_review_but_not_promote(seeded, login, member):
    client = login(member("viewer@acme.example", "viewer"))
    preview = client.get(_url(seeded), {"source": "staging", "target": "prod"})
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "API_URL" in html and "you need the variables.write permission" in html.lower()
    refused = client.post(_url(seeded), {"source": "staging", "target": "prod"})
    assert refused.status_code == 403
    assert _prod_variables(seeded) == {"LOG_LEVEL": "warning"}


def test_member_narrowed_to_viewer_in_prod_cannot_promote_into_prod(seeded, login):
    membership = seeded.add_member("dev@acme.example", "developer")
    with seeded.scope():
        tenant_services.set_environment_role(actor=SYSTEM, membership=membership,
                                             environment=env("prod"), role="viewer")
    client = login(membership.user)
    refused = client.post(_url(seeded), {"source": "staging", "target": "prod"})
    assert refused.status_code == 403
    assert "variables.write" in refused.content.decode()
    assert _prod_variables(seeded) == {"LOG_LEVEL": "warning"}
    ok = client.post(_url(seeded), {"source": "staging", "target": "dev"})
    assert ok.status_code == 302
