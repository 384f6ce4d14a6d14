"""Real MCP servers from the package registries, shared by the tests that talk to them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def everything() -> Iterator[Path]:
    """`@modelcontextprotocol/server-everything` from npm (skipped without Node/npm)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js/npm not available: @modelcontextprotocol/server-everything "
                    "cannot run here")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                            "@modelcontextprotocol/server-everything"], cwd=tmp, check=True,
                           capture_output=True, timeout=180)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"could not install @modelcontextprotocol/server-everything from npm: "
                        f"{exc}")
        entry = Path(tmp) / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
        if not entry.exists():
            pytest.skip(f"server-everything installed without {entry.name}")
        yield entry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")
