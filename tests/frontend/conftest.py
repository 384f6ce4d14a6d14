from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from tenants.models import User

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def login() -> Callable[[User], Client]:
    """A test client signed in as `user` (given a usable password first)."""

    def _login(user: User) -> Client:
        user.set_password(PASSWORD)
        user.save()
        client = Client()
        client.force_login(user)
        return client

    return _login
