"""``aioiroh relay --dev`` as a real process."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import pytest

from tests.support.relay import connect_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
async def test_cli_dev_relay_serves_and_stops() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioiroh.cli.main",
        "relay",
        "--dev",
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(20):
            line = await proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in line.decode()
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s, s.get(url + "/ping") as r:
            assert r.status == 200
        client = await connect_client(url)
        await client.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
