"""Agents (scripted model) run against real MCP servers from the package registries:
`mcp-server-git` from PyPI over stdio, and `@modelcontextprotocol/server-everything` from npm
over stdio and streamable HTTP. The tool results recorded in the steps are the servers' own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from station.runs import engine, services
from station.runs.models import Run, RunStep
from station.tools import discovery
from station.tools import services as tools
from station.tools.models import McpServer
from station.vault.services import set_secret
from tenants import context
from tests.fixtures import SYSTEM
from tests.peers import _free_port, wait_for_port
from tests.runs.conftest import RunWorld

GIT_SERVER = str(Path(sys.executable).parent / "mcp-server-git")


def _add_server(world: RunWorld, name: str, **config: Any) -> McpServer:
    with context.org_scope(world.fx.org):
        server = tools.create_mcp_server(actor=SYSTEM, environment=world.env, name=name,
                                         **config)
    with context.org_context(world.fx.org):
        found = discovery.discover(server, actor=SYSTEM, purpose="test discovery")
    assert found.ok, found.error
    return server


def _run(world: RunWorld, name: str, call: dict[str, Any], tool: str) -> tuple[Run, RunStep]:
    agent = world.agent(name, [{"tool_calls": [call]}, {"content": "{last_tool_result}"}],
                        tools=[tool])
    with context.org_scope(world.fx.org):
        run, _ = services.start_run(actor=SYSTEM, agent=agent, input={})
    with context.org_context(world.fx.org):
        engine.execute(run.pk)
    with context.org_scope(world.fx.org):
        run = Run.objects.get(pk=run.pk)
        step = RunStep.objects.get(run=run, kind="tool")
    return run, step


def test_an_agent_reads_a_git_log_through_mcp_server_git(world: RunWorld,
                                                         tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=Station Test",
           "-c", "user.email=test@station.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "README").write_text("hello\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Initial commit from the run test"], check=True)
    _add_server(world, "git", transport="stdio", command=GIT_SERVER,
                args=["--repository", str(repo)])

    run, step = _run(world, "git-bot", {"name": "git__git_log",
                                        "arguments": {"repo_path": str(repo), "max_count": 5}},
                     "git/git_log")
    assert run.status == Run.SUCCEEDED, run.error
    assert (step.tool_server, step.tool_name) == ("git", "git_log")
    assert "Initial commit from the run test" in step.output["text"]
    assert step.error == "" and not step.output["is_error"]
    assert "Initial commit from the run test" in run.output


@pytest.mark.slow
def test_an_agent_calls_server_everything_over_stdio(world: RunWorld,
                                                     everything: Path) -> None:
    _add_server(world, "everything", transport="stdio", command="node",
                args=[str(everything), "stdio"])
    run, step = _run(world, "echo-bot", {"name": "everything__echo",
                                         "arguments": {"message": "hello over stdio"}},
                     "everything/echo")
    assert run.status == Run.SUCCEEDED, run.error
    assert "hello over stdio" in step.output["text"]
    assert "hello over stdio" in run.output


@pytest.mark.slow
def test_an_agent_calls_server_everything_over_streamable_http(world: RunWorld,
                                                               everything: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(["node", str(everything), "streamableHttp"],
                            env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        with context.org_scope(world.fx.org):
            set_secret(actor=SYSTEM, environment=world.env, name="EVERYTHING_TOKEN",
                       value="tok-everything-9c1f")
        _add_server(world, "everything_http", transport="http",
                    url=f"http://127.0.0.1:{port}/mcp",
                    headers={"Authorization": "Bearer ${secret:EVERYTHING_TOKEN}"})
        run, step = _run(world, "http-bot", {
            "name": "everything_http__get-sum", "arguments": {"a": 19, "b": 23}},
            "everything_http/get-sum")
        assert run.status == Run.SUCCEEDED, run.error
        assert "42" in step.output["text"]
    finally:
        proc.terminate()
        proc.wait(10)
