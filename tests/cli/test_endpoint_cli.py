"""`aioiroh id / listen / connect` driven as a user would: subprocesses and pipes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

CLI = [sys.executable, "-m", "aioiroh.cli.main"]


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    return proc.returncode or 0, out, err


class Listener:
    def __init__(self, proc: asyncio.subprocess.Process, first: dict) -> None:
        self.proc = proc
        self.ticket = first["ticket"]
        self.endpoint_id = first["endpoint_id"]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)


async def start_listener(*args: str) -> Listener:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    return Listener(proc, json.loads(line))


async def test_id_creates_and_reuses_key(tmp_path: Path) -> None:
    key = tmp_path / "k" / "secret.key"
    rc, out, _ = await run("id", "--secret-key", str(key), "--json")
    assert rc == 0
    first = json.loads(out)
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    rc, out, _ = await run("id", "--secret-key", str(key), "--json")
    assert json.loads(out)["endpoint_id"] == first["endpoint_id"]


async def test_listen_and_connect_echo(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    listener = await start_listener("--secret-key", str(key))
    try:
        rc, out, err = await run("connect", listener.ticket, "-m", "hello over iroh")
        assert rc == 0, err
        assert out.strip() == b"hello over iroh"
        assert b"rtt" in err and b"direct" in err
        # stdin as the message, JSON output.
        payload = os.urandom(50_000).hex().encode()
        rc, out, err = await run("connect", listener.ticket, "--json", stdin=payload)
        assert rc == 0, err
        result = json.loads(out)
        assert result["reply"].encode() == payload
        assert result["remote_id"] == listener.endpoint_id
        assert result["path_kind"] == "direct" and result["rtt_ms"] > 0
    finally:
        await listener.stop()


async def test_connect_bad_ticket_is_a_clear_error() -> None:
    rc, _out, err = await run("connect", "endpointnotaticket", "-m", "x")
    assert rc != 0
    assert b"bad ticket" in err and b"Traceback" not in err
