import pytest
from django.db import connection


@pytest.mark.django_db
def test_connects_as_app_role_without_bypass():
    with connection.cursor() as cur:
        cur.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        user, superuser, bypass = cur.fetchone()
    assert user == "station_app"
    assert not superuser and not bypass
