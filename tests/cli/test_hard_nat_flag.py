"""`--hard-nat` on every command that binds an endpoint to talk to a peer."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from aioiroh.cli.main import _load, cli

from ._run import json_event, json_line, run, running

pytestmark = pytest.mark.timeout(90)

COMMANDS = [
    "listen",
    "connect",
    "pipe listen",
    "pipe connect",
    "forward listen",
    "forward connect",
    "send",
    "receive",
    "ping",
    "serve-asgi",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_hard_nat_in_help(command: str) -> None:
    _load()
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "--hard-nat" in result.output
    assert "both peers" in " ".join(result.output.split())


async def test_listen_connect_with_hard_nat() -> None:
    # On loopback a direct path exists at once, so the birthday attempt never starts; this
    # proves the flag is accepted on both sides and the connection still works.
    async with running("listen", "--bind", "127.0.0.1:0", "--hard-nat", "--json") as listener:
        ticket = (await json_line(listener.stdout))["ticket"]
        rc, out, err = await run("connect", ticket, "--hard-nat", "-m", "hard nat hello")
        assert rc == 0, err
        assert out.strip() == b"hard nat hello"
        assert b"direct" in err


async def test_pipe_with_hard_nat() -> None:
    async with running(
        "pipe", "listen", "--bind", "127.0.0.1:0", "--hard-nat", "--recv-only", "--json"
    ) as listener:
        ticket = (await json_event(listener.stderr, "listening"))["ticket"]
        rc, _, err = await run(
            "pipe",
            "connect",
            ticket,
            "--bind",
            "127.0.0.1:0",
            "--hard-nat",
            input=b"piped with --hard-nat\n",
        )
        assert rc == 0, err
        assert listener.stdout is not None
        out = await asyncio.wait_for(listener.stdout.read(), 30)
        assert out == b"piped with --hard-nat\n"
        assert await asyncio.wait_for(listener.wait(), 15) == 0
