"""Interop with Rust iroh-blobs (PyPI iroh 0.35 oracle, subprocess, direct loopback only)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from aioiroh import Endpoint
from aioiroh.base.endpoint_addr import EndpointAddr, TransportAddr
from aioiroh.base.key import PublicKey
from aioiroh.blobs.bao import GROUP_LEN
from aioiroh.blobs.provider import ALPN, get_blob

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.iroh035 import ensure_iroh035_python

pytestmark = pytest.mark.timeout(180)

_SCRIPT = Path(__file__).with_name("iroh035_provider.py")


@pytest.mark.parametrize("size", [0, GROUP_LEN, 3 * GROUP_LEN + 77, 100 << 20])
async def test_fetch_blob_from_rust_provider(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    src = tmp_path / "blob"
    src.write_bytes(data)
    py = ensure_iroh035_python()
    proc = await asyncio.create_subprocess_exec(
        str(py),
        str(_SCRIPT),
        str(src),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    client = await Endpoint.bind(bind_addr="127.0.0.1:0")
    try:
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        host, port = client.bound_sockets()[0]
        proc.stdin.write(f"{client.id} {host}:{port}\n".encode())
        await proc.stdin.drain()
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ok"
        addr = EndpointAddr.from_parts(
            PublicKey.parse(info["node_id"]), [TransportAddr.ip(a) for a in info["addrs"]]
        )
        conn = await asyncio.wait_for(client.connect(addr, ALPN), 30)
        got = await asyncio.wait_for(get_blob(conn, bytes.fromhex(info["hash"])), 60)
        assert got == data
        conn.close()
    finally:
        await client.close()
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
