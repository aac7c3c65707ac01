"""Latency through a relay server that rate-limits its clients, and its buffers toward readers.

When the relay itself is the bottleneck (a per-client receive rate limit), the backlog must
not pile up on the server, where the client can neither see nor drop it: the server keeps a
small, fixed receive window, so TCP flow control pushes the backlog back into the sender's
(bounded) buffers. In the other direction the server keeps its send buffers small, so a
slow reader's backlog stays in the per-client queue, which is bounded.

The end-to-end test uses real sockets on loopback: a sender that keeps its relay connection
saturated (:class:`~aioiroh.relay.client.RelayClient`, writing only while writable) and a
receiver that timestamps small probe datagrams sent in line behind the bulk ones.
"""

from __future__ import annotations

import asyncio
import socket
import statistics

import pytest

from aioiroh.base.key import SecretKey
from aioiroh.relay.client import RelayClient
from aioiroh.relay.protocol.frames import Datagrams, RelayToClientDatagrams
from aioiroh.relay_server import RateLimit, RelayServer, ServerConfig
from aioiroh.relay_server.client_conn import SEND_BUFFER_HIGH, SEND_LOWAT, receive_buffer_for
from aioiroh.util.watch import Watchable
from tests.support.relay import connect_client

RATE = 1_000_000  # bytes/s the relay lets one client send
BULK_DATAGRAM = 8 * 1024
PROBE_PREFIX = b"probe"
# Bytes the receiver sees before the first probe: the 1 MiB burst allowance is spent, and
# every buffer on the way had time to fill (the kernel's autotuning grows them with use).
WARMUP_BYTES = 4_000_000
PROBES = 8
PROBE_EVERY_BYTES = 250_000
PROBE_TIMEOUT = 10.0


async def _rate_limited_relay() -> RelayServer:
    server = RelayServer(ServerConfig(rate_limit=RateLimit(RATE)))
    await server.start()
    return server


@pytest.mark.timeout(60)
async def test_small_datagram_latency_behind_bulk_through_a_rate_limited_relay() -> None:
    """A probe queued behind bulk data arrives within 0.5 s at a 1 MB/s relay rate limit.

    Before the fix the server's kernel receive buffer autotuned to 1.4-1.8 MB (plus aiohttp's
    512 KiB message queue) and held the backlog: probes took ~2 s. Now the server's receive
    window is about 0.1 s of the rate, and the sender's own buffers are small.
    """
    server = await _rate_limited_relay()
    a = await RelayClient.connect(server.http_url, SecretKey.generate())
    b = await RelayClient.connect(server.http_url, SecretKey.generate())
    loop = asyncio.get_running_loop()
    received: Watchable[int] = Watchable(0)
    arrivals: dict[int, float] = {}
    tasks: list[asyncio.Task[None]] = []

    async def receive() -> None:
        while True:
            msg = await b.recv()
            if not isinstance(msg, RelayToClientDatagrams):
                continue
            data = msg.datagrams.contents
            if data.startswith(PROBE_PREFIX):
                arrivals[int(data[len(PROBE_PREFIX) :])] = loop.time()
            received.set(received.get() + len(data))

    async def bulk() -> None:
        block = bytes(BULK_DATAGRAM)
        while True:
            await a.wait_writable()
            await a.send(b.public_key, Datagrams(0, None, block))

    try:
        tasks.append(asyncio.create_task(receive()))
        tasks.append(asyncio.create_task(bulk()))
        await asyncio.wait_for(received.wait_for(lambda n: n >= WARMUP_BYTES), 30)
        latencies = []
        for seq in range(PROBES):
            sent = loop.time()
            await a.send(b.public_key, Datagrams(0, None, PROBE_PREFIX + str(seq).encode()))
            await asyncio.wait_for(received.wait_for(lambda _, s=seq: s in arrivals), PROBE_TIMEOUT)
            latencies.append(arrivals[seq] - sent)
            mark = received.get() + PROBE_EVERY_BYTES
            await asyncio.wait_for(received.wait_for(lambda n, m=mark: n >= m), 10)
        limited = server.metrics.rate_limited
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()
        await server.stop()

    summary = f"probe latencies {[round(x, 3) for x in latencies]}"
    print(summary)
    assert limited > 0, "the rate limit never applied"
    assert statistics.median(latencies) < 0.5, summary
    assert max(latencies) < 0.8, summary


async def test_server_buffers_on_accepted_relay_sockets() -> None:
    """Small send buffers always; a fixed receive buffer only under a rate limit."""
    limited = await _rate_limited_relay()
    unlimited = RelayServer(ServerConfig())
    await unlimited.start()
    try:
        for server in (limited, unlimited):
            client = await connect_client(server.http_url)
            try:
                (conn,) = server.hub.conns.values()
                transport = conn._request.transport
                assert transport is not None
                sock = transport.get_extra_info("socket")
                lowat = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
                assert lowat == SEND_LOWAT
                assert transport.get_write_buffer_limits()[1] == SEND_BUFFER_HIGH
                rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                if server is limited:
                    # Linux doubles the requested size for its bookkeeping.
                    assert rcvbuf in (receive_buffer_for(RATE), 2 * receive_buffer_for(RATE))
            finally:
                await client.close()
    finally:
        await limited.stop()
        await unlimited.stop()


def test_receive_buffer_scales_with_the_rate_within_bounds() -> None:
    assert receive_buffer_for(1_000_000) == 100_000
    assert receive_buffer_for(1_000) == 16 * 1024
    assert receive_buffer_for(10**12) == 4 * 1024 * 1024


@pytest.mark.timeout(30)
async def test_client_that_never_reads_is_bounded_then_dropped() -> None:
    """A reader that stalls costs the server a bounded queue, then its connection."""
    server = RelayServer(ServerConfig(write_timeout=1.0))
    await server.start()
    sender = await connect_client(server.http_url)
    stalled = await connect_client(server.http_url)
    try:
        # The stalled client stops reading (and answering pings).
        assert stalled._reader is not None
        stalled._reader.cancel()
        conn = next(c for c in server.hub.conns.values() if c.endpoint_id == stalled.endpoint_id)
        transport = conn._request.transport
        assert transport is not None
        payload = bytes(32 * 1024)
        peak = 0
        async with asyncio.timeout(20):
            while conn.conn_id in server.hub.conns:
                await sender.send(stalled.endpoint_id, payload)
                peak = max(peak, conn.queued_bytes + transport.get_write_buffer_size())
                await asyncio.sleep(0)
        assert server.metrics.slow_clients == 1
        assert peak <= conn.queue_bytes_max + SEND_BUFFER_HIGH + len(payload) + 1024, peak
    finally:
        await sender.close()
        await stalled.close()
        await server.stop()
