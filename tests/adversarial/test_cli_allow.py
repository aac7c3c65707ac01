"""``--allow`` / ``--allow-file`` on the listening commands refuse strangers (issue 12)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from aioiroh.base.key import SecretKey
from aioiroh.base.ticket import EndpointTicket
from aioiroh.endpoint.endpoint import ACCEPT_REFUSED_CODE, Endpoint
from aioiroh.errors import ConnectionLost
from aioiroh.http import ALPN_H3
from tests.cli._run import running

pytestmark = pytest.mark.timeout(60)

_ECHO = b"aioiroh/echo/0"
_DUMBPIPE = b"DUMBPIPEV0"
_APP = "async def app(scope, receive, send):\n    pass\n"


async def _ticket(proc: asyncio.subprocess.Process) -> EndpointTicket:
    """The ticket from the first JSON line that has one, on stdout or stderr."""
    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]

    async def scan(stream: asyncio.StreamReader) -> str:
        while line := await stream.readline():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "ticket" in obj:
                return str(obj["ticket"])
        await asyncio.Event().wait()  # this stream ended without one: let the other win
        raise AssertionError("unreachable")

    tasks = [asyncio.create_task(scan(s)) for s in streams]
    try:
        done, _ = await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert done, "the command printed no ticket"
        return EndpointTicket.parse(done.pop().result())
    finally:
        for task in tasks:
            task.cancel()


async def _refused(ticket: EndpointTicket, alpn: bytes, key: SecretKey) -> ConnectionLost:
    ep = await Endpoint.bind(key, bind_addr="127.0.0.1:0")
    try:
        conn = await ep.connect(ticket, alpn)
        return await asyncio.wait_for(conn.closed(), 10)
    finally:
        await ep.close()


def _commands(tmp_path: Path) -> dict[str, tuple[list[str], bytes]]:
    (tmp_path / "allow_app.py").write_text(_APP)
    loop = ["--bind", "127.0.0.1:0", "--json"]
    return {
        "listen": (["listen", *loop], _ECHO),
        "pipe listen": (["pipe", "listen", "--recv-only", *loop], _DUMBPIPE),
        "forward listen": (["forward", "listen", "--host", "127.0.0.1:9", *loop], _DUMBPIPE),
        "serve-asgi": (
            ["serve-asgi", "allow_app:app", "--app-dir", str(tmp_path), *loop],
            ALPN_H3,
        ),
    }


@pytest.mark.parametrize("command", ["listen", "pipe listen", "forward listen", "serve-asgi"])
async def test_allowlist_refuses_strangers(command: str, tmp_path: Path) -> None:
    args, alpn = _commands(tmp_path)[command]
    friend = SecretKey.generate()
    async with running(*args, "--allow", str(friend.public())) as proc:
        ticket = await _ticket(proc)
        lost = await _refused(ticket, alpn, SecretKey.generate())
        assert lost.code == ACCEPT_REFUSED_CODE
        assert "not allowed" in lost.reason


async def test_allow_file_admits_listed_peer(tmp_path: Path) -> None:
    friend = SecretKey.generate()
    allow_file = tmp_path / "allow.txt"
    allow_file.write_text(f"# friends\n{friend.public()}\n")
    args, alpn = _commands(tmp_path)["listen"]
    async with running(*args, "--allow-file", str(allow_file)) as proc:
        ticket = await _ticket(proc)
        ep = await Endpoint.bind(friend, bind_addr="127.0.0.1:0")
        try:
            conn = await ep.connect(ticket, alpn)
            send, recv = await conn.open_bi()
            await send.write(b"hi")
            await send.finish()
            assert await asyncio.wait_for(recv.read(), 10) == b"hi"
            conn.close()
        finally:
            await ep.close()
        stranger = await _refused(ticket, alpn, SecretKey.generate())
        assert stranger.code == ACCEPT_REFUSED_CODE
