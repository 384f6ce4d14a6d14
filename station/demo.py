"""The demo organization `station up` creates on first start, and its login.

The demo owner's generated password is kept in the data directory (mode 0600) so every
`station up` can print it; it is a local convenience, never used with an external database.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass

from station import datadir

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.station.local"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


def ensure_demo() -> DemoLogin:
    from tenants import platform, services
    from tenants.authz import Principal
    from tenants.models import User

    path = datadir.data_dir() / "demo-login.json"
    if path.exists():
        stored = json.loads(path.read_text())
        login = DemoLogin(stored["email"], stored["password"])
    else:
        login = DemoLogin(DEMO_EMAIL, secrets.token_urlsafe(12))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"email": login.email, "password": login.password}, handle)
    if platform.org_by_slug(DEMO_SLUG) is None:
        services.create_organization(
            actor=Principal.system("station up"),
            slug=DEMO_SLUG,
            name="Demo",
            owner_email=login.email,
        )
    user = User.objects.get(email=login.email)
    if not user.check_password(login.password):
        user.set_password(login.password)
        user.save(update_fields=["password"])
    return login
