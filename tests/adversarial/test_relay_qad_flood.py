"""The relay's QAD service under a flood of Initials that never continue (issue 12)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from aioiroh.base.key import SecretKey
from aioiroh.quic.qad_connection import QAD_ALPN
from aioiroh.relay_server.qad import QadServer
from aioiroh.socket.qad import probe_qad
from aioiroh.socket.socket import MagicSocket

FLOOD = 1100


def _initials(count: int, port: int) -> list[bytes]:
    """First datagrams of ``count`` valid QUIC clients that will never send another."""
    config = QuicConfiguration(is_client=True, alpn_protocols=[QAD_ALPN], verify_mode=ssl.CERT_NONE)
    out = []
    for _ in range(count):
        client = QuicConnection(configuration=config)
        client.connect(("127.0.0.1", port), now=0.0)
        out.extend(data for data, _ in client.datagrams_to_send(now=0.0))
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("per_source", [16, 100_000], ids=["per-source-cap", "retry"])
async def test_flood_of_initials_then_legitimate_probe_answered(per_source: int) -> None:
    async with QadServer("127.0.0.1", 0, max_per_source=per_source) as qad:
        initials = await asyncio.to_thread(_initials, FLOOD, qad.port)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(("127.0.0.1", 0))
        raw.setblocking(False)
        try:
            for i, data in enumerate(initials):
                try:
                    raw.sendto(data, ("127.0.0.1", qad.port))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                if i % 2 == 0:
                    await asyncio.sleep(0.001)  # let the server read: measure it, not the kernel
            # The first handshakes cost the server real CPU; the kernel may drop some of the rest.
            await asyncio.wait_for(qad.wait_stats(lambda s: s.datagrams >= FLOOD // 2), 20)
        finally:
            raw.close()
        assert qad.connection_count <= max(16, qad.retry_threshold or 0)
        if per_source == 16:
            assert qad.stats.dropped_source >= FLOOD // 2 - 16
        else:
            assert qad.stats.retries >= FLOOD // 2 - qad.max_connections // 4
        sock = MagicSocket(SecretKey.generate(), alpns=lambda: [], on_incoming=lambda d: None)
        sock.bind(("127.0.0.2", 0), None)
        try:
            start = time.monotonic()
            host, _port = await probe_qad(sock, "127.0.0.1", qad.port, timeout=1.0)
            assert time.monotonic() - start < 1.0
            assert host == "127.0.0.2"
        finally:
            sock.close()
