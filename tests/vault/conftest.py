from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from station.vault import keyring
from tests.vault.helpers import use_keys_file, write_keys_file


@pytest.fixture
def keys_file(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A private master-keys file with one fresh key k1, used by this process (and by any
    `station` subprocess the test starts); the shared var/test file is never touched."""
    path = tmp_path / "master-keys.json"
    write_keys_file(path, {"k1": os.urandom(32)}, "k1")
    use_keys_file(settings, path)
    yield path
    keyring.reset()


@pytest.fixture
def reveal_allowed(settings: Any) -> None:
    settings.VAULT_REVEAL_ALLOWED = True
